//! The Telegram bot's webhook mode as a Lambda behind API Gateway (`lambda_http`): the same
//! route as `TELEGRAM_MODE=webhook`, checking `X-Telegram-Bot-Api-Secret-Token`. Register it with
//! `setWebhook` (the URL and `TELEGRAM_WEBHOOK_SECRET`); its notify queue is consumed by the
//! `telegram-notify` Lambda.

use std::sync::Arc;

use tessera_telegram::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_chat::notify::init_logs(true);
    let config = Config::from_env()?;
    let secret = config
        .webhook_secret
        .clone()
        .ok_or("TELEGRAM_WEBHOOK_SECRET is required for the webhook Lambda")?;
    let state = Arc::new(tessera_telegram::state(&config).await?);
    lambda_http::run(tessera_telegram::webhook::router(state, &secret)).await
}
