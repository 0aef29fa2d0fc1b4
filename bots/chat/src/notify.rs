//! A bot's notify-queue consumer: long-polls its frontend's FIFO queue and shows each event of
//! its own bot, in order, deleting it once shown; one that fails comes back after its
//! visibility timeout (and holds up its chat's group until then, so order is kept).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Frontend, NotifyMessage};
use tessera_store::Queue;
use tessera_store::definitions::notify_queue;
use tessera_store::queue::ReceiveRequest;

/// Consumes `frontend`'s notify queue until the task is dropped, showing `bot_id`'s events with
/// `show` (another bot's are left for it).
pub async fn consume<F, Fut>(queue: Arc<dyn Queue>, frontend: Frontend, bot_id: String, show: F)
where
    F: Fn(NotifyMessage) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let def = notify_queue(frontend);
    loop {
        let request = ReceiveRequest {
            max_messages: 10,
            wait: Duration::from_secs(20),
            visibility_timeout: Some(Duration::from_secs(60)),
        };
        let messages = match queue.receive(&def, request).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "notify queue unavailable; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        for message in messages {
            let handled = match serde_json::from_str::<NotifyMessage>(&message.body) {
                Ok(notice) if notice.bot_id != bot_id => continue,
                Ok(notice) => show(notice).await,
                Err(error) => {
                    tracing::warn!(%error, "not a notify message: dropped");
                    Ok(())
                }
            };
            match handled {
                Ok(()) => {
                    if let Err(error) = queue.delete(&def, &message.receipt).await {
                        tracing::warn!(%error, "notify message not deleted");
                    }
                }
                Err(error) => tracing::warn!(%error, "notice not shown; it comes back later"),
            }
        }
    }
}

/// Logs as human-readable lines (or JSON on Lambda), filtered by `RUST_LOG` (default `info`).
pub fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if json {
        tracing_subscriber::fmt()
            .json()
            .without_time()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}
