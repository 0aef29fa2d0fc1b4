//! `/settings`: a server admin's limits for the server (the most steps, the models allowed, and
//! a per-member daily job cap), kept by the API and applied to every job made in the server.
//! Only a member with Manage Server (or Administrator) may change them; without options it
//! shows them.

use axum::response::Response;
use serde_json::{Value, json};
use serenity::all::{CommandDataOptionValue, CommandInteraction, Permissions};

use crate::interactions::{BotState, ephemeral};

/// Shows or changes the server's settings.
pub async fn settings(state: &BotState, command: &CommandInteraction) -> Response {
    let Some(guild_id) = command.guild_id else {
        return ephemeral("Settings belong to a server: use /settings there.");
    };
    let may_manage = command
        .member
        .as_ref()
        .and_then(|member| member.permissions)
        .is_some_and(|permissions| permissions.intersects(Permissions::MANAGE_GUILD | Permissions::ADMINISTRATOR));
    if !may_manage {
        return ephemeral("Only members who can manage this server may change its settings.");
    }
    let guild = format!("discord:{}", guild_id.get());
    let mut current = match state.api.guild_settings(&guild).await {
        Ok(current) => current,
        Err(failure) => return ephemeral(&crate::interactions::plain(&failure)),
    };
    if !command.data.options.is_empty() {
        for option in &command.data.options {
            match (option.name.as_str(), &option.value) {
                ("max_steps", CommandDataOptionValue::Integer(0)) => current["max_steps"] = Value::Null,
                ("max_steps", CommandDataOptionValue::Integer(steps)) => current["max_steps"] = json!(steps),
                ("daily_cap", CommandDataOptionValue::Integer(0)) => current["daily_jobs_per_user"] = Value::Null,
                ("daily_cap", CommandDataOptionValue::Integer(cap)) => current["daily_jobs_per_user"] = json!(cap),
                ("models", CommandDataOptionValue::String(list)) if list.trim().eq_ignore_ascii_case("all") => {
                    current["allowed_models"] = Value::Null;
                }
                ("models", CommandDataOptionValue::String(list)) => {
                    let ids: Vec<String> = list
                        .split([',', ' '])
                        .map(|id| id.trim().to_ascii_lowercase())
                        .filter(|id| !id.is_empty())
                        .collect();
                    current["allowed_models"] = json!(ids);
                }
                _ => {}
            }
        }
        current = match state.api.save_guild_settings(&guild, &current).await {
            Ok(saved) => saved,
            Err(failure) => return ephemeral(&crate::interactions::plain(&failure)),
        };
    }
    let show = |value: &Value, unset: &str| match value {
        Value::Null => unset.to_owned(),
        Value::Array(ids) => ids.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    ephemeral(&format!(
        "This server's settings:\n• most steps: {}\n• models: {}\n• jobs per member per day: {}",
        show(&current["max_steps"], "the plan's"),
        show(&current["allowed_models"], "all"),
        show(&current["daily_jobs_per_user"], "no cap"),
    ))
}
