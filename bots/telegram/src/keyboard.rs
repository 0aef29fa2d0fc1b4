//! The Telegram keyboard under a result: the shared buttons ([`tessera_chat::buttons`]) as an
//! inline keyboard.

use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};
use tessera_chat::buttons::{Action, CallbackKey};

/// The buttons under a result of `job_id` for `user_id`: `🎲 Reroll`, `♻️ Same seed`,
/// `🔎 Variations` on one row, then `⬆️ Upscale` (only when `upscale`) and `❌ Delete`.
pub fn result_keyboard(key: &CallbackKey, job_id: &str, user_id: u64, upscale: bool) -> InlineKeyboardMarkup {
    let button = |action: Action| InlineKeyboardButton::callback(action.label(), key.encode(action, job_id, user_id));
    let first = vec![
        button(Action::Reroll),
        button(Action::SameSeed),
        button(Action::Variations),
    ];
    let mut second = Vec::with_capacity(2);
    if upscale {
        second.push(button(Action::Upscale));
    }
    second.push(button(Action::Delete));
    InlineKeyboardMarkup::new(vec![first, second])
}

#[cfg(test)]
mod tests {
    use teloxide::types::InlineKeyboardButtonKind;
    use tessera_chat::buttons::CallbackError;

    use super::*;

    const JOB: &str = "job_abc123def456";
    const ALICE: u64 = 123_456_789;
    const BOB: u64 = 987_654_321;

    fn key() -> CallbackKey {
        CallbackKey::new(b"test-secret-0123456789abcdef0123456789")
    }

    fn buttons(markup: &InlineKeyboardMarkup) -> Vec<Vec<(String, String)>> {
        markup
            .inline_keyboard
            .iter()
            .map(|row| {
                row.iter()
                    .map(|button| match &button.kind {
                        InlineKeyboardButtonKind::CallbackData(data) => (button.text.clone(), data.clone()),
                        other => panic!("not a callback button: {other:?}"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn keyboard_layout() {
        let key = key();
        let rows = buttons(&result_keyboard(&key, JOB, ALICE, true));
        let labels: Vec<Vec<&str>> = rows
            .iter()
            .map(|row| row.iter().map(|(label, _)| label.as_str()).collect())
            .collect();
        assert_eq!(
            labels,
            [
                vec!["🎲 Reroll", "♻️ Same seed", "🔎 Variations"],
                vec!["⬆️ Upscale", "❌ Delete"],
            ]
        );
        let actions = [
            Action::Reroll,
            Action::SameSeed,
            Action::Variations,
            Action::Upscale,
            Action::Delete,
        ];
        for ((_, data), action) in rows.iter().flatten().zip(actions) {
            assert_eq!(data, &key.encode(action, JOB, ALICE));
            assert_eq!(key.decode(data, ALICE), Ok((action, JOB.to_owned())));
            assert_eq!(key.decode(data, BOB), Err(CallbackError::NotYours));
        }

        let rows = buttons(&result_keyboard(&key, JOB, ALICE, false));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].len(), 3);
        assert_eq!(rows[1].len(), 1);
        assert_eq!(rows[1][0].0, "❌ Delete");
    }
}
