//! What the bot does with an update, the same in polling and webhook mode: commands, a plain
//! message in a private chat as `/imagine`, and the buttons under a result.

use std::sync::Arc;

use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{CallbackQuery, MessageId, ReplyParameters, Update, UpdateKind, User};
use teloxide::utils::command::BotCommands;

use tessera_chat::ImagineRequest;
use tessera_chat::buttons::{Action, CallbackError, CallbackKey};
use tessera_chat::seen::Seen;
use tessera_chat::tessera::{ApiFailure, Created, NewJob, TesseraApi};
use tessera_chat::text;

use crate::flags::parse_imagine;

/// How many jobs a 🔎 Variations press starts, each with a new seed.
pub const VARIATIONS: usize = 2;

/// The bot's commands; their doc comments are the `/help` text.
#[derive(BotCommands, Clone, Debug, PartialEq, Eq)]
#[command(rename_rule = "lowercase")]
pub enum Command {
    /// Make an image: /imagine a red fox in the snow --ar 16:9 --steps 30 --seed 42 --model sdxl --no blur
    Imagine(String),
    /// The models you can use.
    Models,
    /// Today's tokens and your plan.
    Usage,
    /// Your jobs waiting or running.
    Status,
    /// Cancel your last job, or the one you name: /cancel job_abc123def456
    Cancel(String),
    /// How to use this bot.
    Help,
    /// Start here.
    Start,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct BotState {
    /// The Bot API client.
    pub bot: Bot,
    /// Tessera's internal API.
    pub api: TesseraApi,
    /// Signs and checks button data.
    pub key: CallbackKey,
    /// This bot's `bot_id` on jobs.
    pub bot_id: String,
    /// This bot's @username, for commands addressed to it in groups.
    pub username: String,
    /// Events already shown in a chat (duplicate notify deliveries are dropped).
    pub seen: Seen,
}

impl BotState {
    /// The state for `bot`, asking Telegram for the bot's username.
    pub async fn new(bot: Bot, api: TesseraApi, key: CallbackKey, bot_id: String) -> anyhow::Result<Self> {
        let me = bot.get_me().await?;
        Ok(Self {
            bot,
            api,
            key,
            bot_id,
            username: me.username().to_owned(),
            seen: Seen::default(),
        })
    }
}

/// Handles one update. Failures are logged; the chat hears about them where it can.
pub async fn handle_update(state: &Arc<BotState>, update: Update) {
    let update_id = update.id.0;
    let outcome = match update.kind {
        UpdateKind::Message(message) => on_message(state, update_id, &message).await,
        UpdateKind::CallbackQuery(query) => on_callback(state, &query).await,
        _ => Ok(()),
    };
    if let Err(error) = outcome {
        tracing::warn!(update_id, %error, "update not handled");
    }
}

/// `telegram:<user id>`: the Tessera user behind a Telegram user.
pub fn user_ref(user: &User) -> String {
    format!("telegram:{}", user.id.0)
}

async fn on_message(state: &Arc<BotState>, update_id: u32, message: &Message) -> anyhow::Result<()> {
    let (Some(text), Some(user)) = (message.text(), message.from.as_ref()) else {
        return Ok(());
    };
    let private = message.chat.is_private();
    let command = match Command::parse(text, &state.username) {
        Ok(command) if private || addressed_to(text, &state.username) => command,
        Ok(_) => return Ok(()),
        Err(_) if private && !text.starts_with('/') => Command::Imagine(text.to_owned()),
        Err(_) if private => {
            reply(
                state,
                message,
                "I don't know that command. Send /help to see what I can do.",
            )
            .await?;
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    match command {
        Command::Imagine(args) => imagine(state, update_id, message, user, &args).await,
        Command::Models => models(state, message).await,
        Command::Usage => usage(state, message, user).await,
        Command::Status => status(state, message, user).await,
        Command::Cancel(job) => cancel(state, message, user, job.trim()).await,
        Command::Help | Command::Start => {
            let help = format!(
                "I make images with Tessera. Send /imagine and a prompt{}.\n\n{}",
                if private { ", or just the prompt" } else { "" },
                Command::descriptions()
            );
            reply(state, message, &help).await
        }
    }
}

/// In a group, a command counts only when it names this bot: `/imagine@tessera_bot`.
fn addressed_to(text: &str, username: &str) -> bool {
    let command = text.split_whitespace().next().unwrap_or_default();
    command
        .split_once('@')
        .is_some_and(|(_, name)| name.eq_ignore_ascii_case(username))
}

async fn reply(state: &BotState, message: &Message, text: &str) -> anyhow::Result<()> {
    state
        .bot
        .send_message(message.chat.id, text)
        .reply_parameters(ReplyParameters::new(message.id))
        .await?;
    Ok(())
}

async fn imagine(
    state: &Arc<BotState>,
    update_id: u32,
    message: &Message,
    user: &User,
    args: &str,
) -> anyhow::Result<()> {
    let request = match parse_imagine(args) {
        Ok(request) => request,
        Err(error) => return reply(state, message, &error.to_string()).await,
    };
    let key = format!("telegram-{}-{update_id}", state.bot_id);
    start_job(state, message.chat.id, message.id, user, &request, &key).await
}

/// Answers "Queued…" under `reply_to`, creates the job (idempotent by `key`), and turns the
/// answer into "Queued, N ahead" or the error in plain words. A replayed creation (a
/// redelivered update) removes its extra message: one request, one job, one status message.
async fn start_job(
    state: &Arc<BotState>,
    chat: ChatId,
    reply_to: MessageId,
    user: &User,
    request: &ImagineRequest,
    key: &str,
) -> anyhow::Result<()> {
    let status = state
        .bot
        .send_message(chat, "Queued…")
        .reply_parameters(ReplyParameters::new(reply_to))
        .await?;
    let prompt: String = request.prompt.chars().take(300).collect();
    let context = json!({
        "platform": "telegram",
        "chat_id": chat.0.to_string(),
        "message_id": reply_to.0.to_string(),
        "status_message_id": status.id.0.to_string(),
        "prompt": prompt,
    });
    let user_ref = user_ref(user);
    let answer = state
        .api
        .create_job(
            NewJob {
                frontend: "telegram",
                bot_id: &state.bot_id,
                user_ref: &user_ref,
                guild: None,
                reply_context: context,
                params: request.params(),
            },
            key,
        )
        .await;
    let text = match answer {
        // The same update again (its key is derived from the update): the first one's status
        // message already speaks for the job.
        Ok(Created { replayed: true, .. }) => {
            state.bot.delete_message(chat, status.id).await?;
            return Ok(());
        }
        Err(failure) if failure.code == "IDEMPOTENCY_KEY_REUSED" => {
            state.bot.delete_message(chat, status.id).await?;
            return Ok(());
        }
        Ok(created) => text::queued(created.queue_position.saturating_sub(1), created.estimated_time_seconds),
        Err(failure) => failure_text(state, &user_ref, &failure).await,
    };
    state.bot.edit_message_text(chat, status.id, text).await?;
    Ok(())
}

/// An API failure in plain words, with the tokens left when it is about the quota.
async fn failure_text(state: &BotState, user_ref: &str, failure: &ApiFailure) -> String {
    state.api.failure_text(user_ref, failure).await
}

async fn models(state: &BotState, message: &Message) -> anyhow::Result<()> {
    let text = match state.api.models().await {
        Ok(models) => {
            let lines: Vec<String> = models
                .iter()
                .map(|model| {
                    let size = model["max_resolution"]
                        .as_str()
                        .map(|max| format!(", up to {max}"))
                        .unwrap_or_default();
                    format!(
                        "• {} — {} ({}{size})",
                        model["id"].as_str().unwrap_or("?"),
                        model["name"].as_str().unwrap_or("?"),
                        model["capability"].as_str().unwrap_or("?"),
                    )
                })
                .collect();
            format!("Models (use --model <id>):\n{}", lines.join("\n"))
        }
        Err(failure) => text::plain_error(&failure.code, &failure.message, None),
    };
    reply(state, message, &text).await
}

async fn usage(state: &BotState, message: &Message, user: &User) -> anyhow::Result<()> {
    let text = match state.api.usage(&user_ref(user)).await {
        Ok(usage) => format!(
            "Plan: {}\nToday: {} of {} tokens used, {} left.\nThe quota resets at 00:00 UTC, in {}.",
            usage["plan"]["name"].as_str().unwrap_or("?"),
            usage["tokens_used_today"],
            usage["daily_token_limit"],
            usage["tokens_remaining_today"],
            text::human_duration(text::seconds_until_utc_midnight(text::now_unix())),
        ),
        Err(failure) => text::plain_error(&failure.code, &failure.message, None),
    };
    reply(state, message, &text).await
}

async fn status(state: &BotState, message: &Message, user: &User) -> anyhow::Result<()> {
    let text = match state.api.active_jobs(&user_ref(user)).await {
        Ok(jobs) if jobs.is_empty() => "You have no jobs waiting or running.".to_owned(),
        Ok(jobs) => {
            let lines: Vec<String> = jobs
                .iter()
                .map(|job| {
                    let prompt: String = job["prompt"].as_str().unwrap_or_default().chars().take(40).collect();
                    let state = match job["status"].as_str() {
                        Some("RUNNING") => format!("running, {}%", job["progress"]),
                        _ => format!("queued, #{}", job["queue_position"]),
                    };
                    format!("• {} — {state} — “{prompt}”", job["job_id"].as_str().unwrap_or("?"))
                })
                .collect();
            lines.join("\n")
        }
        Err(failure) => text::plain_error(&failure.code, &failure.message, None),
    };
    reply(state, message, &text).await
}

async fn cancel(state: &BotState, message: &Message, user: &User, job: &str) -> anyhow::Result<()> {
    let user_ref = user_ref(user);
    let job = if job.is_empty() {
        match state.api.active_jobs(&user_ref).await {
            Ok(jobs) => match jobs.first().and_then(|job| job["job_id"].as_str()) {
                Some(id) => id.to_owned(),
                None => return reply(state, message, "You have no job to cancel.").await,
            },
            Err(failure) => {
                return reply(
                    state,
                    message,
                    &text::plain_error(&failure.code, &failure.message, None),
                )
                .await;
            }
        }
    } else {
        job.to_owned()
    };
    let text = match state.api.cancel(&user_ref, &job).await {
        Ok(_) => format!("Cancelled {job}. Your tokens were refunded."),
        Err(failure) if failure.status == 404 => format!("I can't find a job {job} of yours."),
        Err(failure) if failure.status == 409 => format!("{job} has already finished."),
        Err(failure) => text::plain_error(&failure.code, &failure.message, None),
    };
    reply(state, message, &text).await
}

async fn on_callback(state: &Arc<BotState>, query: &CallbackQuery) -> anyhow::Result<()> {
    let answer = |text: &str| state.bot.answer_callback_query(query.id.clone()).text(text.to_owned());
    let Some(data) = query.data.as_deref() else {
        answer("This button does nothing.").await?;
        return Ok(());
    };
    let (action, job_id) = match state.key.decode(data, query.from.id.0) {
        Ok(decoded) => decoded,
        Err(CallbackError::NotYours) => {
            answer("That button belongs to someone else's image.").await?;
            return Ok(());
        }
        Err(_) => {
            answer("This button has expired.").await?;
            return Ok(());
        }
    };
    let Some(result) = query.message.as_ref().and_then(|message| message.regular_message()) else {
        answer("That message is too old to act on.").await?;
        return Ok(());
    };
    let chat = result.chat.id;
    match action {
        Action::Delete => {
            answer("Deleted.").await?;
            state.bot.delete_message(chat, result.id).await?;
            Ok(())
        }
        Action::Upscale => {
            answer("Upscaling isn't available for this model yet.").await?;
            Ok(())
        }
        Action::Reroll | Action::SameSeed | Action::Variations => {
            answer("On it…").await?;
            repeat(state, query, result, action, &job_id).await
        }
    }
}

/// Starts the job(s) a button asks for, from the original job's request, each replying to
/// the result it came from.
async fn repeat(
    state: &Arc<BotState>,
    query: &CallbackQuery,
    result: &Message,
    action: Action,
    job_id: &str,
) -> anyhow::Result<()> {
    let user = &query.from;
    let original = match state.api.job(&user_ref(user), job_id).await {
        Ok(job) => job,
        Err(failure) => {
            let text = failure_text(state, &user_ref(user), &failure).await;
            state
                .bot
                .send_message(result.chat.id, text)
                .reply_parameters(ReplyParameters::new(result.id))
                .await?;
            return Ok(());
        }
    };
    let mut request = ImagineRequest::from_params(&original["params"]);
    let runs = match action {
        Action::Variations => VARIATIONS,
        _ => 1,
    };
    for run in 0..runs {
        if action != Action::SameSeed {
            request.seed = Some(u64::from(rand::random::<u32>()));
        }
        let key = format!("telegram-{}-cb-{}-{run}", state.bot_id, query.id.0);
        start_job(state, result.chat.id, result.id, user, &request, &key).await?;
    }
    Ok(())
}
