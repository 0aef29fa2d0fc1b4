//! The Discord interactions endpoint as a Lambda behind API Gateway (`lambda_http`): set its URL
//! as the application's Interactions Endpoint URL in the developer portal.

use std::sync::Arc;

use tessera_discord::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_chat::notify::init_logs(true);
    let config = Config::from_env()?;
    let state = Arc::new(tessera_discord::state(&config));
    lambda_http::run(tessera_discord::interactions::router(state)).await
}
