//! `cargo run -p tessera-telegram`: the Telegram bot, long polling by default
//! (`TELEGRAM_MODE=webhook` serves the webhook route instead and registers it with Telegram),
//! with the notify-queue consumer beside it.

use std::sync::Arc;

use anyhow::Context;
use teloxide::prelude::*;
use tessera_telegram::config::{Config, Mode};
use tessera_telegram::{notify, polling, webhook};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tessera_chat::notify::init_logs(false);
    let config = Config::from_env()?;
    let state = Arc::new(tessera_telegram::state(&config).await?);
    let queue = config.backend.open().await?;
    tokio::spawn(notify::consume(state.clone(), queue));
    tracing::info!(bot = %state.username, mode = ?config.mode, "the Telegram bot is running");
    match config.mode {
        Mode::Polling => {
            state.bot.delete_webhook().await.context("leaving webhook mode")?;
            polling::run(state).await;
        }
        Mode::Webhook => {
            let secret = config.webhook_secret.as_deref().unwrap_or_default();
            if let Some(url) = &config.webhook_url {
                let url = url.parse().context("TELEGRAM_WEBHOOK_URL is not a URL")?;
                state
                    .bot
                    .set_webhook(url)
                    .secret_token(secret.to_owned())
                    .await
                    .context("setWebhook")?;
            }
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            tracing::info!("webhook route on http://{}{}", config.listen, webhook::WEBHOOK_PATH);
            axum::serve(listener, webhook::router(state, secret)).await?;
        }
    }
    Ok(())
}
