//! Tessera's Telegram bot. It is a chat frontend: it turns `/imagine` (and a plain message in a
//! private chat) into jobs through `POST /api/internal/jobs`, answers at once with the queue
//! position, edits that message as the job progresses (events from its notify queue), and sends
//! the result as a photo replying to the request, with buttons to go on from it.

pub mod callback;
pub mod config;
pub mod flags;
pub mod handler;
pub mod notify;
pub mod polling;
pub mod tessera;
pub mod text;
pub mod webhook;

use std::sync::Arc;

use anyhow::Context;
use teloxide::Bot;
use tessera_core::SystemClock;
use tessera_store::Queue;
use tessera_store::aws::AwsStore;
use tessera_store::definitions::Naming;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};

use crate::callback::CallbackKey;
use crate::config::{Backend, Config};
use crate::handler::BotState;
use crate::tessera::TesseraApi;

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

/// The queue port the notify queue lives on: the embedded store shared with `cargo run`, or SQS.
pub async fn notify_queue_port(config: &Config) -> anyhow::Result<Arc<dyn Queue>> {
    Ok(match &config.backend {
        Backend::Embedded(dir) => Arc::new(
            EmbeddedStore::open(EmbeddedConfig {
                dir: dir.clone(),
                public_url: "http://127.0.0.1".into(),
                clock: Arc::new(SystemClock),
            })
            .with_context(|| format!("opening the embedded store in {}", dir.display()))?,
        ),
        Backend::Aws(prefix) => {
            let naming = Naming::new(prefix).context("TESSERA_RESOURCE_PREFIX is invalid")?;
            Arc::new(AwsStore::from_env(naming, Arc::new(SystemClock)).await?)
        }
    })
}
