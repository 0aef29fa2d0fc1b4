//! The Discord bot's side of job events, from its notify queue (`notify-discord.fifo`):
//! progress edits the interaction's response (at most every 2 s, as the API sends them), the
//! result becomes an embed with the image attached and the buttons under it. An interaction
//! token lives 15 minutes: a job that ends later is posted as a channel message through the bot
//! token, mentioning the user. A duplicate event is dropped.

use std::sync::Arc;

use serde_json::Value;
use serenity::all::{
    Builder, ButtonStyle, ChannelId, CreateActionRow, CreateAttachment, CreateButton, CreateEmbed,
    CreateInteractionResponseFollowup, CreateMessage, EditInteractionResponse, MessageId,
};
use tessera_chat::buttons::{Action, CallbackKey};
use tessera_chat::text;
use tessera_core::{Frontend, NotifyEvent, NotifyMessage};
use tessera_store::Queue;

use tessera_chat::text::now_unix;

use crate::interactions::BotState;

/// How long after the interaction its token is still used (Discord's 15 minutes, less a margin).
pub const TOKEN_SECONDS: i64 = 14 * 60;

/// Where a job's events go, from the `reply_context` the bot sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The interaction token.
    pub token: String,
    /// The channel.
    pub channel_id: u64,
    /// The requester.
    pub user_id: u64,
    /// A follow-up message that shows the job instead of the original response.
    pub message_id: Option<u64>,
    /// When the interaction came, unix seconds.
    pub created_at: i64,
    /// The prompt, for the embed.
    pub prompt: String,
}

impl Place {
    /// Reads a reply context; `None` when it lacks the channel or the token.
    pub fn of(context: &Value) -> Option<Self> {
        let number = |name: &str| match &context[name] {
            Value::String(text) => text.parse::<u64>().ok(),
            value => value.as_u64(),
        };
        Some(Self {
            token: context["interaction_token"].as_str()?.to_owned(),
            channel_id: number("channel_id")?,
            user_id: number("user_id").unwrap_or_default(),
            message_id: number("message_id"),
            created_at: context["created_at"].as_i64().unwrap_or_default(),
            prompt: context["prompt"].as_str().unwrap_or_default().to_owned(),
        })
    }

    fn token_alive(&self) -> bool {
        now_unix() - self.created_at < TOKEN_SECONDS
    }
}

/// The buttons under a result, for its requester.
pub fn result_buttons(key: &CallbackKey, job_id: &str, user_id: u64) -> Vec<CreateActionRow> {
    let button = |action: Action, style: ButtonStyle| {
        CreateButton::new(key.encode(action, job_id, user_id))
            .label(action.label())
            .style(style)
    };
    vec![CreateActionRow::Buttons(vec![
        button(Action::Reroll, ButtonStyle::Secondary),
        button(Action::SameSeed, ButtonStyle::Secondary),
        button(Action::Variations, ButtonStyle::Secondary),
        button(Action::Delete, ButtonStyle::Danger),
    ])]
}

/// Shows one event in its channel, once.
pub async fn on_notice(state: &BotState, notice: &NotifyMessage) -> anyhow::Result<()> {
    if notice.bot_id != state.bot_id || state.seen.contains(&notice.event_id) {
        return Ok(());
    }
    let Some(place) = Place::of(&notice.reply_context) else {
        tracing::warn!(event = notice.event_id, "a notice without a channel: dropped");
        return Ok(());
    };
    match notice.event {
        NotifyEvent::Started | NotifyEvent::Progress if place.token_alive() => {
            let content = match notice.event {
                NotifyEvent::Started => text::started(),
                _ => text::running(notice.progress.unwrap_or(0)),
            };
            // Progress is best effort: a spent token must not hold up the chat's later events.
            if let Err(error) = edit_text(state, &place, content).await {
                tracing::info!(%error, "a progress edit was not shown");
            }
        }
        NotifyEvent::Started | NotifyEvent::Progress => {}
        NotifyEvent::Completed => send_result(state, &place, notice).await?,
        NotifyEvent::Failed => final_text(state, &place, text::job_failure(&notice.job)).await?,
        NotifyEvent::Cancelled => final_text(state, &place, text::cancelled()).await?,
    }
    state.seen.insert(&notice.event_id);
    Ok(())
}

/// Edits the message that shows the job.
async fn edit_text(state: &BotState, place: &Place, content: String) -> serenity::Result<()> {
    match place.message_id {
        None => EditInteractionResponse::new()
            .content(content)
            .execute(&state.http, &place.token)
            .await
            .map(drop),
        Some(id) => CreateInteractionResponseFollowup::new()
            .content(content)
            .execute(&state.http, (Some(MessageId::new(id)), &place.token))
            .await
            .map(drop),
    }
}

/// The last word on a job that did not complete: an edit while the token lives, else a channel
/// message mentioning the user.
async fn final_text(state: &BotState, place: &Place, content: String) -> anyhow::Result<()> {
    if place.token_alive() && edit_text(state, place, content.clone()).await.is_ok() {
        return Ok(());
    }
    let message = CreateMessage::new().content(format!("<@{}> {content}", place.user_id));
    ChannelId::new(place.channel_id)
        .send_message(&state.http, message)
        .await?;
    Ok(())
}

/// The result: an embed with the image attached, the prompt, seed, model and time, and the
/// buttons.
async fn send_result(state: &BotState, place: &Place, notice: &NotifyMessage) -> anyhow::Result<()> {
    let job = &notice.job;
    let Some(artifact) = job["artifacts"].as_array().and_then(|artifacts| artifacts.first()) else {
        return final_text(state, place, "The job finished without an output.".into()).await;
    };
    let url = artifact["url"].as_str().unwrap_or_default();
    let bytes = state.api.download(url).await?;
    let name = format!("{}.{}", notice.job_id, artifact["format"].as_str().unwrap_or("png"));
    let caption = text::caption(
        &place.prompt,
        job["metadata"]["seed"].as_u64().unwrap_or_default(),
        job["metadata"]["model_used"].as_str().unwrap_or("?"),
        job["execution_time_seconds"].as_f64(),
    );
    let embed = CreateEmbed::new()
        .description(caption)
        .image(format!("attachment://{name}"));
    let buttons = result_buttons(&state.key, &notice.job_id, place.user_id);
    let attachment = CreateAttachment::bytes(bytes, name);
    if place.token_alive() {
        let edited = match place.message_id {
            None => EditInteractionResponse::new()
                .content("")
                .embed(embed.clone())
                .new_attachment(attachment.clone())
                .components(buttons.clone())
                .execute(&state.http, &place.token)
                .await
                .map(drop),
            Some(id) => CreateInteractionResponseFollowup::new()
                .content("")
                .embed(embed.clone())
                .add_file(attachment.clone())
                .components(buttons.clone())
                .execute(&state.http, (Some(MessageId::new(id)), &place.token))
                .await
                .map(drop),
        };
        match edited {
            Ok(()) => return Ok(()),
            Err(error) => tracing::info!(%error, "the interaction token is spent: posting to the channel"),
        }
    }
    let message = CreateMessage::new()
        .content(format!("<@{}> your image is ready", place.user_id))
        .embed(embed)
        .add_file(attachment)
        .components(buttons);
    ChannelId::new(place.channel_id)
        .send_message(&state.http, message)
        .await?;
    Ok(())
}

/// Consumes the Discord notify queue until the task is dropped.
pub async fn consume(state: Arc<BotState>, queue: Arc<dyn Queue>) {
    let bot_id = state.bot_id.clone();
    let show = |notice: NotifyMessage| {
        let state = state.clone();
        async move { on_notice(&state, &notice).await }
    };
    tessera_chat::notify::consume(queue, Frontend::Discord, bot_id, show).await;
}
