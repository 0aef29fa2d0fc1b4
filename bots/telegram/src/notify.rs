//! The bot's side of job events: it consumes its notify queue (`notify-telegram.fifo`) and
//! turns each event into the chat's view: the status message edited with progress, the result
//! sent as a photo (video, audio) replying to the request with its buttons, or the failure in
//! plain words. A duplicate delivery of an event is dropped, so nothing is posted twice.

use std::sync::Arc;

use serde_json::Value;
use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{InputFile, MessageId, ReplyParameters};
use tessera_core::{Frontend, NotifyEvent, NotifyMessage};
use tessera_store::Queue;

use tessera_chat::text;

use crate::handler::BotState;
use crate::keyboard::result_keyboard;

/// Where in the chat a job's events go, from the `reply_context` the bot sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPlace {
    /// The chat.
    pub chat: ChatId,
    /// The user's request (results reply to it).
    pub request: MessageId,
    /// The bot's status message (edited with progress).
    pub status: Option<MessageId>,
    /// The prompt, for the caption.
    pub prompt: String,
}

impl ChatPlace {
    /// Reads a reply context; `None` when it names no chat.
    pub fn of(context: &Value) -> Option<Self> {
        let number = |name: &str| match &context[name] {
            Value::String(text) => text.parse::<i64>().ok(),
            value => value.as_i64(),
        };
        let message = |name: &str| number(name).and_then(|id| i32::try_from(id).ok()).map(MessageId);
        Some(Self {
            chat: ChatId(number("chat_id")?),
            request: message("message_id")?,
            status: message("status_message_id"),
            prompt: context["prompt"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// Shows one event in its chat, once (an event of another bot is not this bot's to show).
pub async fn on_notice(state: &BotState, notice: &NotifyMessage) -> anyhow::Result<()> {
    if notice.bot_id != state.bot_id || state.seen.contains(&notice.event_id) {
        return Ok(());
    }
    let Some(place) = ChatPlace::of(&notice.reply_context) else {
        tracing::warn!(event = notice.event_id, "a notice without a chat: dropped");
        return Ok(());
    };
    match notice.event {
        NotifyEvent::Started => edit_status(state, &place, text::started()).await?,
        NotifyEvent::Progress => edit_status(state, &place, text::running(notice.progress.unwrap_or(0))).await?,
        NotifyEvent::Completed => send_result(state, &place, notice).await?,
        NotifyEvent::Failed => edit_status(state, &place, text::job_failure(&notice.job)).await?,
        NotifyEvent::Cancelled => edit_status(state, &place, text::cancelled()).await?,
    }
    state.seen.insert(&notice.event_id);
    Ok(())
}

/// Edits the status message; an edit to the same text is not an error.
async fn edit_status(state: &BotState, place: &ChatPlace, text: String) -> anyhow::Result<()> {
    let Some(status) = place.status else {
        return Ok(());
    };
    match state.bot.edit_message_text(place.chat, status, text).await {
        Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Sends each artifact with the method its type needs, replying to the request, with the
/// caption and the buttons; then removes the status message.
async fn send_result(state: &BotState, place: &ChatPlace, notice: &NotifyMessage) -> anyhow::Result<()> {
    let job = &notice.job;
    let caption = text::caption(
        &place.prompt,
        job["metadata"]["seed"].as_u64().unwrap_or_default(),
        job["metadata"]["model_used"].as_str().unwrap_or("?"),
        job["execution_time_seconds"].as_f64(),
    );
    let owner = notice
        .user_ref
        .strip_prefix("telegram:")
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or_default();
    let keyboard = result_keyboard(&state.key, &notice.job_id, owner, false);
    for artifact in job["artifacts"].as_array().into_iter().flatten() {
        let Some(url) = artifact["url"].as_str() else { continue };
        let bytes = state.api.download(url).await?;
        let name = format!("{}.{}", notice.job_id, artifact["format"].as_str().unwrap_or("bin"));
        let file = InputFile::memory(bytes).file_name(name);
        let reply = ReplyParameters::new(place.request);
        match artifact["type"].as_str() {
            Some("video") => {
                let request = state.bot.send_video(place.chat, file).caption(caption.clone());
                request.reply_parameters(reply).reply_markup(keyboard.clone()).await?;
            }
            Some("audio") => {
                let request = state.bot.send_audio(place.chat, file).caption(caption.clone());
                request.reply_parameters(reply).reply_markup(keyboard.clone()).await?;
            }
            _ => {
                let request = state.bot.send_photo(place.chat, file).caption(caption.clone());
                request.reply_parameters(reply).reply_markup(keyboard.clone()).await?;
            }
        }
    }
    if let Some(status) = place.status
        && let Err(error) = state.bot.delete_message(place.chat, status).await
    {
        tracing::info!(%error, "the status message was not deleted");
    }
    Ok(())
}

/// Consumes the Telegram notify queue until the task is dropped.
pub async fn consume(state: Arc<BotState>, queue: Arc<dyn Queue>) {
    let bot_id = state.bot_id.clone();
    let show = |notice: NotifyMessage| {
        let state = state.clone();
        async move { on_notice(&state, &notice).await }
    };
    tessera_chat::notify::consume(queue, Frontend::Telegram, bot_id, show).await;
}
