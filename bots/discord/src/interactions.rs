//! The interactions endpoint: Discord POSTs every interaction, signed with Ed25519, to one HTTPS
//! URL. A bad or missing signature (or a timestamp more than 5 minutes off) answers 401 and
//! nothing else happens. PING answers PONG. `/imagine` and the result buttons acknowledge at once
//! through the callback endpoint (a deferred response, within Discord's 3 seconds), create the
//! job, and edit the original response to "Queued, N ahead"; all of it before the HTTP answer,
//! so the same route works as a Lambda, which freezes once it has answered.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use serenity::all::{
    Builder, CommandInteraction, ComponentInteraction, CreateAutocompleteResponse, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, EditInteractionResponse, Http, Interaction,
    Permissions, User,
};
use serenity::interactions_endpoint::Verifier;
use tessera_chat::ImagineRequest;
use tessera_chat::buttons::{Action, CallbackError, CallbackKey};
use tessera_chat::seen::Seen;
use tessera_chat::tessera::{ApiFailure, Created, NewJob, TesseraApi};
use tessera_chat::text;

use crate::commands;

/// The path Discord POSTs interactions to.
pub const INTERACTIONS_PATH: &str = "/discord/interactions";

/// How far a request's `X-Signature-Timestamp` may be from now (replays are refused).
pub const TIMESTAMP_TOLERANCE_SECONDS: i64 = 5 * 60;

/// How many jobs a 🔎 Variations press starts, each with a new seed.
pub const VARIATIONS: usize = 2;

/// Everything the handlers share.
pub struct BotState {
    /// Discord's REST API (bot token; interaction tokens per call).
    pub http: Arc<Http>,
    /// Checks request signatures with the application's public key.
    pub verifier: Verifier,
    /// The application's id.
    pub application_id: u64,
    /// Tessera's internal API.
    pub api: TesseraApi,
    /// Signs and checks button ids.
    pub key: CallbackKey,
    /// This bot's `bot_id` on jobs.
    pub bot_id: String,
    /// Events already shown (duplicate notify deliveries are dropped).
    pub seen: Seen,
}

impl std::fmt::Debug for BotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotState")
            .field("application_id", &self.application_id)
            .field("bot_id", &self.bot_id)
            .finish_non_exhaustive()
    }
}

/// The endpoint's route over `state`.
pub fn router(state: Arc<BotState>) -> Router {
    Router::new().route(INTERACTIONS_PATH, post(receive)).with_state(state)
}

/// `discord:<user id>`: the Tessera user behind a Discord user.
pub fn user_ref(user: &User) -> String {
    format!("discord:{}", user.id.get())
}

async fn receive(State(state): State<Arc<BotState>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let (signature, timestamp) = (header("x-signature-ed25519"), header("x-signature-timestamp"));
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|at| (text::now_unix() - at).abs() <= TIMESTAMP_TOLERANCE_SECONDS);
    if !fresh || state.verifier.verify(signature, timestamp, &body).is_err() {
        return (StatusCode::UNAUTHORIZED, "invalid request signature").into_response();
    }
    let interaction = match serde_json::from_slice::<Interaction>(&body) {
        Ok(interaction) => interaction,
        Err(error) => {
            tracing::warn!(%error, "an interaction that does not parse");
            return (StatusCode::BAD_REQUEST, "unreadable interaction").into_response();
        }
    };
    match interaction {
        Interaction::Ping(_) => Json(json!({ "type": 1 })).into_response(),
        Interaction::Command(command) => on_command(&state, &command).await,
        Interaction::Autocomplete(command) => autocomplete(&state, &command).await,
        Interaction::Component(component) => on_component(&state, &component).await,
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// An ephemeral message as the HTTP answer: only the user who asked sees it.
pub fn ephemeral(text: &str) -> Response {
    let message = CreateInteractionResponseMessage::new().content(text).ephemeral(true);
    Json(CreateInteractionResponse::Message(message)).into_response()
}

/// A message everyone in the channel sees, as the HTTP answer.
fn visible(text: &str) -> Response {
    Json(CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new().content(text),
    ))
    .into_response()
}

async fn on_command(state: &Arc<BotState>, command: &CommandInteraction) -> Response {
    let user_ref = user_ref(&command.user);
    match command.data.name.as_str() {
        "imagine" => match commands::imagine_request(&command.data.options) {
            Ok(request) => {
                let key = format!("discord-{}", command.id.get());
                let place = Place::of_command(command);
                start_job(state, &place, &command.user, &request, &key, Reply::Original).await;
                StatusCode::ACCEPTED.into_response()
            }
            Err(problem) => ephemeral(&format!(
                "{}. Example: /imagine prompt: a red fox in the snow",
                capitalised(&problem)
            )),
        },
        "models" => match state.api.models().await {
            Ok(models) => {
                let lines: Vec<String> = models
                    .iter()
                    .map(|model| {
                        format!(
                            "• `{}` — {} ({})",
                            model["id"].as_str().unwrap_or("?"),
                            model["name"].as_str().unwrap_or("?"),
                            model["capability"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                ephemeral(&format!("Models:\n{}", lines.join("\n")))
            }
            Err(failure) => ephemeral(&plain(&failure)),
        },
        "usage" => match state.api.usage(&user_ref).await {
            Ok(usage) => ephemeral(&format!(
                "Plan: {}\nToday: {} of {} tokens used, {} left.\nThe quota resets at 00:00 UTC, in {}.",
                usage["plan"]["name"].as_str().unwrap_or("?"),
                usage["tokens_used_today"],
                usage["daily_token_limit"],
                usage["tokens_remaining_today"],
                text::human_duration(text::seconds_until_utc_midnight(text::now_unix()))
            )),
            Err(failure) => ephemeral(&plain(&failure)),
        },
        "status" => match state.api.active_jobs(&user_ref).await {
            Ok(jobs) if jobs.is_empty() => ephemeral("You have no jobs waiting or running."),
            Ok(jobs) => {
                let lines: Vec<String> = jobs
                    .iter()
                    .map(|job| match job["status"].as_str() {
                        Some("RUNNING") => format!(
                            "• `{}` — running, {}%",
                            job["job_id"].as_str().unwrap_or("?"),
                            job["progress"]
                        ),
                        _ => format!(
                            "• `{}` — queued, #{}",
                            job["job_id"].as_str().unwrap_or("?"),
                            job["queue_position"]
                        ),
                    })
                    .collect();
                ephemeral(&lines.join("\n"))
            }
            Err(failure) => ephemeral(&plain(&failure)),
        },
        "cancel" => cancel(state, command, &user_ref).await,
        "settings" => crate::settings::settings(state, command).await,
        other => ephemeral(&format!("I don't know /{other}.")),
    }
}

async fn cancel(state: &BotState, command: &CommandInteraction, user_ref: &str) -> Response {
    let named = command.data.options.iter().find_map(|option| match &option.value {
        serenity::all::CommandDataOptionValue::String(job) if option.name == "job" => Some(job.trim().to_owned()),
        _ => None,
    });
    let job = match named {
        Some(job) => job,
        None => match state.api.active_jobs(user_ref).await {
            Ok(jobs) => match jobs.first().and_then(|job| job["job_id"].as_str()) {
                Some(id) => id.to_owned(),
                None => return ephemeral("You have no job to cancel."),
            },
            Err(failure) => return ephemeral(&plain(&failure)),
        },
    };
    match state.api.cancel(user_ref, &job).await {
        Ok(_) => visible(&format!("Cancelled `{job}`. Your tokens were refunded.")),
        Err(failure) if failure.status == 404 => ephemeral(&format!("I can't find a job `{job}` of yours.")),
        Err(failure) if failure.status == 409 => ephemeral(&format!("`{job}` has already finished.")),
        Err(failure) => ephemeral(&plain(&failure)),
    }
}

async fn autocomplete(state: &BotState, command: &CommandInteraction) -> Response {
    let typed = commands::focused_text(&command.data.options)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut choices = CreateAutocompleteResponse::new();
    for model in state.api.models().await.unwrap_or_default().iter().take(25) {
        let (Some(id), Some(name)) = (model["id"].as_str(), model["name"].as_str()) else {
            continue;
        };
        if model["capability"] == "image" && (id.contains(&typed) || name.to_ascii_lowercase().contains(&typed)) {
            choices = choices.add_string_choice(format!("{name} ({id})"), id);
        }
    }
    Json(CreateInteractionResponse::Autocomplete(choices)).into_response()
}

/// Where a job's messages go: the interaction whose response shows it, and the channel.
#[derive(Debug, Clone)]
pub struct Place {
    /// The interaction's id.
    pub interaction_id: u64,
    /// The interaction's token (15 minutes to edit its responses).
    pub token: String,
    /// The channel.
    pub channel_id: u64,
    /// The server, if any.
    pub guild_id: Option<u64>,
}

impl Place {
    fn of_command(command: &CommandInteraction) -> Self {
        Self {
            interaction_id: command.id.get(),
            token: command.token.clone(),
            channel_id: command.channel_id.get(),
            guild_id: command.guild_id.map(|guild| guild.get()),
        }
    }
}

/// Which message of the interaction shows the job: its original response, or a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Original,
    Followup,
}

/// Acknowledges (deferred), creates the job (idempotent by `key`), and shows "Queued, N ahead"
/// or the error, ephemerally, in plain words.
async fn start_job(state: &BotState, place: &Place, user: &User, request: &ImagineRequest, key: &str, reply: Reply) {
    if reply == Reply::Original {
        let defer = CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new());
        if let Err(error) = defer
            .execute(&state.http, (place.interaction_id.into(), &place.token))
            .await
        {
            tracing::info!(%error, "the interaction was acknowledged already");
        }
    }
    let followup = match reply {
        Reply::Original => None,
        Reply::Followup => {
            let message = CreateInteractionResponseFollowup::new().content("Queued…");
            match message.execute(&state.http, (None, &place.token)).await {
                Ok(message) => Some(message.id.get()),
                Err(error) => {
                    tracing::warn!(%error, "no follow-up message for a variation");
                    return;
                }
            }
        }
    };
    let context = json!({
        "platform": "discord",
        "application_id": state.application_id.to_string(),
        "interaction_token": place.token,
        "channel_id": place.channel_id.to_string(),
        "guild_id": place.guild_id.map(|guild| guild.to_string()),
        "user_id": user.id.get().to_string(),
        "message_id": followup.map(|id| id.to_string()),
        "created_at": text::now_unix(),
        "prompt": request.prompt.chars().take(300).collect::<String>(),
    });
    let user_ref = user_ref(user);
    let guild = place.guild_id.map(|guild| format!("discord:{guild}"));
    let job = NewJob {
        frontend: "discord",
        bot_id: &state.bot_id,
        user_ref: &user_ref,
        guild: guild.as_deref(),
        reply_context: context,
        params: request.params(),
    };
    let answer = state.api.create_job(job, key).await;
    let text = match answer {
        Ok(Created { replayed: true, .. }) => return,
        Err(failure) if failure.code == "IDEMPOTENCY_KEY_REUSED" => return,
        Ok(created) => text::queued(created.queue_position.saturating_sub(1), created.estimated_time_seconds),
        Err(failure) => {
            let text = failure_text(state, &user_ref, &failure).await;
            if reply == Reply::Original {
                let _ = state.http.delete_original_interaction_response(&place.token).await;
            }
            let message = CreateInteractionResponseFollowup::new().content(text).ephemeral(true);
            if let Err(error) = message.execute(&state.http, (None, &place.token)).await {
                tracing::warn!(%error, "the error was not shown");
            }
            return;
        }
    };
    let edited = match followup {
        None => EditInteractionResponse::new()
            .content(text)
            .execute(&state.http, &place.token)
            .await
            .map(drop),
        Some(id) => {
            let edit = serenity::all::CreateInteractionResponseFollowup::new().content(text);
            edit.execute(&state.http, (Some(id.into()), &place.token))
                .await
                .map(drop)
        }
    };
    if let Err(error) = edited {
        tracing::warn!(%error, "the queued message was not shown");
    }
}

/// An API failure in plain words, with the tokens left when it is about the quota.
async fn failure_text(state: &BotState, user_ref: &str, failure: &ApiFailure) -> String {
    state.api.failure_text(user_ref, failure).await
}

/// An API failure in plain words, without quota figures.
pub fn plain(failure: &ApiFailure) -> String {
    text::plain_error(&failure.code, &failure.message, failure.details.as_deref())
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

async fn on_component(state: &Arc<BotState>, component: &ComponentInteraction) -> Response {
    let presser = &component.user;
    let custom_id = component.data.custom_id.as_str();
    let decoded = state.key.decode(custom_id, presser.id.get());
    let may_manage = component
        .member
        .as_ref()
        .and_then(|member| member.permissions)
        .is_some_and(|permissions| permissions.contains(Permissions::MANAGE_MESSAGES));
    let action = match decoded {
        Ok((action, job)) => Some((action, job)),
        Err(CallbackError::NotYours) if custom_id.starts_with(Action::Delete.code()) && may_manage => None,
        Err(CallbackError::NotYours) => return ephemeral("That button belongs to someone else's image."),
        Err(_) => return ephemeral("This button has expired."),
    };
    match action {
        None | Some((Action::Delete, _)) => {
            let deleted = state
                .http
                .delete_message(
                    component.channel_id,
                    component.message.id,
                    Some("deleted by its requester"),
                )
                .await;
            match deleted {
                Ok(()) => ephemeral("Deleted."),
                Err(error) => {
                    tracing::warn!(%error, "the result was not deleted");
                    ephemeral("I couldn't delete that message.")
                }
            }
        }
        Some((Action::Upscale, _)) => ephemeral("Upscaling isn't available for this model yet."),
        Some((action, job_id)) => repeat(state, component, action, &job_id).await,
    }
}

/// Starts the job(s) a button asks for, from the original job's request: the first shown in the
/// button interaction's response, the others in follow-ups.
async fn repeat(state: &BotState, component: &ComponentInteraction, action: Action, job_id: &str) -> Response {
    let user = &component.user;
    let original = match state.api.job(&user_ref(user), job_id).await {
        Ok(job) => job,
        Err(failure) => return ephemeral(&failure_text(state, &user_ref(user), &failure).await),
    };
    let place = Place {
        interaction_id: component.id.get(),
        token: component.token.clone(),
        channel_id: component.channel_id.get(),
        guild_id: component.guild_id.map(|guild| guild.get()),
    };
    let mut request = ImagineRequest::from_params(&original["params"]);
    let runs = if action == Action::Variations { VARIATIONS } else { 1 };
    for run in 0..runs {
        if action != Action::SameSeed {
            request.seed = Some(u64::from(rand::random::<u32>()));
        }
        let key = format!("discord-{}-{run}", component.id.get());
        let reply = if run == 0 { Reply::Original } else { Reply::Followup };
        start_job(state, &place, user, &request, &key, reply).await;
    }
    StatusCode::ACCEPTED.into_response()
}
