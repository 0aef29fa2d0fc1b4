//! `tessera models`, `tessera usage` and `tessera keys create|ls|rm`.

use serde_json::{Value, json};

use super::Context;
use crate::cli::args::{KeysCommand, ModelsArgs, UsageArgs};
use crate::cli::client::Call;
use crate::cli::error::CliError;
use crate::cli::output::{Outcome, cell, note, rows, table};

/// `GET /api/v1/models`, as a table.
pub async fn models(args: ModelsArgs, context: &Context) -> Result<Outcome, CliError> {
    let call = Call::get("/api/v1/models").query("capability", args.capability.map(|capability| capability.as_str()));
    let body = context.client()?.json(call).await?;
    let fields = [
        "id",
        "capability",
        "name",
        "max_resolution",
        "estimated_time_seconds",
        "cost_multiplier",
        "available_on_plan",
    ];
    let table_rows: Vec<Vec<String>> = rows(&body, "models")
        .iter()
        .map(|model| fields.iter().map(|field| cell(model, field)).collect())
        .collect();
    let text = table(
        &["ID", "CAPABILITY", "NAME", "MAX RES", "SECONDS", "COST x", "PLANS"],
        &table_rows,
    );
    Ok(Outcome::success(body, text))
}

/// `GET /api/v1/user/usage`, one row a day and the total.
pub async fn usage(args: UsageArgs, context: &Context) -> Result<Outcome, CliError> {
    let call = Call::get("/api/v1/user/usage")
        .query("start_date", args.start)
        .query("end_date", args.end);
    let body = context.client()?.json(call).await?;
    let table_rows: Vec<Vec<String>> = rows(&body, "usage")
        .iter()
        .map(|day| {
            ["date", "tokens_used", "jobs_completed", "jobs_failed"]
                .iter()
                .map(|field| cell(day, field))
                .collect()
        })
        .collect();
    let mut text = table(&["DATE", "TOKENS", "COMPLETED", "FAILED"], &table_rows);
    if let Some(total) = body.get("total") {
        text.push_str(&format!(
            "\ntotal: {} tokens, {} jobs completed, {} tokens a day on average",
            cell(total, "tokens_used"),
            cell(total, "jobs_completed"),
            cell(total, "average_tokens_per_day")
        ));
    }
    Ok(Outcome::success(body, text))
}

/// `tessera keys ...` over `/api/api-keys`.
pub async fn keys(command: KeysCommand, context: &Context) -> Result<Outcome, CliError> {
    let mut client = context.client()?;
    match command {
        KeysCommand::Create { name, scopes } => {
            let created = client
                .json(Call::post("/api/api-keys", json!({"name": name, "scopes": scopes})))
                .await?;
            note(&format!(
                "API key {} created; this is the only time its secret is shown:",
                cell(&created, "id")
            ));
            let text = cell(&created, "key");
            Ok(Outcome::success(created, text))
        }
        KeysCommand::Ls => {
            let body = client.json(Call::get("/api/api-keys")).await?;
            let fields = ["id", "name", "scopes", "created_at", "last_used_at"];
            let table_rows: Vec<Vec<String>> = rows(&body, "items")
                .iter()
                .map(|key| fields.iter().map(|field| cell(key, field)).collect())
                .collect();
            let text = table(&["ID", "NAME", "SCOPES", "CREATED", "LAST USED"], &table_rows);
            Ok(Outcome::success(body, text))
        }
        KeysCommand::Rm { key_id } => {
            if key_id.is_empty() || !key_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(CliError::Usage(format!(
                    "{key_id:?} is not a key id (like key_a1b2c3d4e5f6)"
                )));
            }
            client.send(Call::delete(format!("/api/api-keys/{key_id}"))).await?;
            let json: Value = json!({"deleted": key_id});
            Ok(Outcome::success(json, format!("{key_id} revoked")))
        }
    }
}
