//! Long polling: `getUpdates` with a 20 s timeout, confirming each batch by asking for the next
//! offset; each update is handled in its own task so that a slow one holds up no other.

use std::sync::Arc;
use std::time::Duration;

use teloxide::prelude::*;

use crate::handler::{BotState, handle_update};

/// How long one `getUpdates` waits for an update.
pub const POLL_SECONDS: u32 = 20;

/// Polls until the task is dropped.
pub async fn run(state: Arc<BotState>) {
    let mut offset: i32 = 0;
    loop {
        let updates = match state.bot.get_updates().offset(offset).timeout(POLL_SECONDS).await {
            Ok(updates) => updates,
            Err(error) => {
                tracing::warn!(%error, "getUpdates failed; retrying in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        for update in updates {
            offset = offset.max(i32::try_from(update.id.0).unwrap_or(i32::MAX).saturating_add(1));
            let state = state.clone();
            tokio::spawn(async move { handle_update(&state, update).await });
        }
    }
}
