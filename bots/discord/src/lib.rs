//! Tessera's Discord bot, over HTTP interactions (Discord POSTs each slash command and button
//! press to one signed HTTPS endpoint, which fits Lambda). It creates jobs only through
//! `POST /api/internal/jobs`, acknowledges within Discord's 3 seconds, edits its response with
//! the queue position and progress (events from its notify queue), and ends with an embed of the
//! image and buttons to go on from it.

pub mod commands;
pub mod config;
pub mod interactions;
pub mod notify;
pub mod settings;

use std::sync::Arc;

use serenity::all::HttpBuilder;
use serenity::interactions_endpoint::Verifier;
use tessera_chat::buttons::CallbackKey;
use tessera_chat::seen::Seen;
use tessera_chat::tessera::TesseraApi;

use crate::config::Config;
use crate::interactions::BotState;

/// Discord's REST client for this configuration (through `DISCORD_API_URL` when set).
pub fn http(config: &Config) -> serenity::http::Http {
    let mut builder = HttpBuilder::new(&config.bot_token)
        .application_id(config.application_id.into())
        .ratelimiter_disabled(config.api_url.is_some());
    if let Some(url) = &config.api_url {
        builder = builder.proxy(url.clone());
    }
    builder.build()
}

/// The bot's shared state from its configuration.
pub fn state(config: &Config) -> BotState {
    BotState {
        http: Arc::new(http(config)),
        verifier: Verifier::new(&config.public_key),
        application_id: config.application_id,
        api: TesseraApi::new(&config.api_base, &config.service_key),
        key: CallbackKey::new(&config.button_secret),
        bot_id: config.bot_id.clone(),
        seen: Seen::default(),
    }
}
