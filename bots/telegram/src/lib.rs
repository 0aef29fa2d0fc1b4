//! Tessera's Telegram bot. It is a chat frontend: it turns `/imagine` (and a plain message in a
//! private chat) into jobs through `POST /api/internal/jobs`, answers at once with the queue
//! position, edits that message as the job progresses (events from its notify queue), and sends
//! the result as a photo replying to the request, with buttons to go on from it.

pub mod config;
pub mod flags;
pub mod handler;
pub mod keyboard;
pub mod notify;
pub mod polling;
pub mod webhook;

use anyhow::Context;
use teloxide::Bot;
use tessera_chat::buttons::CallbackKey;
use tessera_chat::tessera::TesseraApi;

use crate::config::Config;
use crate::handler::BotState;

/// The bot's shared state from its configuration (asks Telegram who the bot is).
pub async fn state(config: &Config) -> anyhow::Result<BotState> {
    let bot = Bot::new(&config.token).set_api_url(config.telegram_api_url.clone());
    let api = TesseraApi::new(&config.api_url, &config.service_key);
    BotState::new(
        bot,
        api,
        CallbackKey::new(&config.callback_secret),
        config.bot_id.clone(),
    )
    .await
    .context("getMe: is TELEGRAM_BOT_TOKEN right?")
}
