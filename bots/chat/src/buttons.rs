//! The buttons under a result (reroll, same seed, variations, upscale, delete), made so they
//! can't be forged. A button's data (Telegram's `callback_data`, at most 64 bytes; Discord's
//! `custom_id`, at most 100) comes back from the client when it is pressed, so anyone could send made-up data; each one therefore carries a tag, an HMAC
//! over the action, the job and the id of the user it was made for. [`CallbackKey::decode`]
//! checks the tag against the id of the user who pressed the button, so a button pressed by
//! someone else in a group, or data edited to name another job, starts nothing.
//!
//! The data reads `<code>:<job_id>:<tag>`: a one-letter action code, the job id, and the first
//! 12 bytes of HMAC-SHA256(secret, `<code>:<job_id>:<user_id>`) in unpadded base64url (16
//! characters). The user id is not in the data: it is the presser's, which the platform vouches for.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Telegram's limit on a button's `callback_data`, in bytes.
pub const MAX_CALLBACK_DATA_BYTES: usize = 64;

/// How many bytes of the HMAC the tag keeps (96 bits).
const TAG_BYTES: usize = 12;

/// The tag's length in unpadded base64url.
const TAG_CHARS: usize = 16;

/// What a button under a result does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The same request with a new seed (`r`).
    Reroll,
    /// The same request and seed again (`s`).
    SameSeed,
    /// Variations on the result (`v`).
    Variations,
    /// A larger version of the result (`u`).
    Upscale,
    /// Delete the result message (`d`).
    Delete,
}

impl Action {
    /// Every action, in the order the keyboard shows them.
    pub const ALL: [Action; 5] = [
        Action::Reroll,
        Action::SameSeed,
        Action::Variations,
        Action::Upscale,
        Action::Delete,
    ];

    /// The one-letter code in callback data: `r`, `s`, `v`, `u`, `d`.
    pub fn code(self) -> char {
        match self {
            Action::Reroll => 'r',
            Action::SameSeed => 's',
            Action::Variations => 'v',
            Action::Upscale => 'u',
            Action::Delete => 'd',
        }
    }

    /// The action with the one-letter `code`, if there is one.
    pub fn from_code(code: char) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.code() == code)
    }

    /// The button's label, e.g. `🎲 Reroll`.
    pub fn label(self) -> &'static str {
        match self {
            Action::Reroll => "🎲 Reroll",
            Action::SameSeed => "♻️ Same seed",
            Action::Variations => "🔎 Variations",
            Action::Upscale => "⬆️ Upscale",
            Action::Delete => "❌ Delete",
        }
    }
}

/// Why pressed-button data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not data this bot makes: wrong shape, unknown action, too long, or a tag that isn't one.
    #[error("this button isn't one of mine")]
    Malformed,
    /// Well formed, but the tag doesn't match the user who pressed it: another user's button, or
    /// data that was edited.
    #[error("this button belongs to someone else")]
    NotYours,
}

/// The secret that signs and checks button data. Its `Debug` does not show the secret.
///
/// Give it at least 32 random bytes, and keep it across restarts: buttons made with one key do
/// not work with another.
#[derive(Clone)]
pub struct CallbackKey(Hmac<Sha256>);

impl fmt::Debug for CallbackKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackKey(<secret>)")
    }
}

impl CallbackKey {
    /// A key with `secret` (any length; HMAC hashes long ones).
    pub fn new(secret: &[u8]) -> Self {
        Self(Hmac::new_from_slice(secret).expect("HMAC takes a key of any length"))
    }

    /// The HMAC of `<code>:<job_id>:<user_id>`, not yet finalized.
    fn mac(&self, action: Action, job_id: &str, user_id: u64) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(format!("{}:{job_id}:{user_id}", action.code()).as_bytes());
        mac
    }

    /// The callback data for `action` on `job_id`, for the button shown to `user_id`:
    /// `<code>:<job_id>:<tag>`. It is 19 bytes plus the job id, so job ids up to 45 bytes keep it
    /// within Telegram's 64.
    pub fn encode(&self, action: Action, job_id: &str, user_id: u64) -> String {
        let digest = self.mac(action, job_id, user_id).finalize().into_bytes();
        let tag = URL_SAFE_NO_PAD.encode(&digest[..TAG_BYTES]);
        format!("{}:{job_id}:{tag}", action.code())
    }

    /// Reads callback data from a pressed button, checking its tag (in constant time) against
    /// `presser_user_id`, the user who pressed it. Gives the action and the job id.
    pub fn decode(&self, data: &str, presser_user_id: u64) -> Result<(Action, String), CallbackError> {
        if data.len() > MAX_CALLBACK_DATA_BYTES {
            return Err(CallbackError::Malformed);
        }
        let (code, rest) = data.split_once(':').ok_or(CallbackError::Malformed)?;
        let (job_id, tag) = rest.rsplit_once(':').ok_or(CallbackError::Malformed)?;
        let mut code_chars = code.chars();
        let action = match (code_chars.next(), code_chars.next()) {
            (Some(code), None) => Action::from_code(code).ok_or(CallbackError::Malformed)?,
            _ => return Err(CallbackError::Malformed),
        };
        if job_id.is_empty() || tag.len() != TAG_CHARS {
            return Err(CallbackError::Malformed);
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| CallbackError::Malformed)?;
        // The length check matters: `verify_truncated_left` accepts a tag of any length up to the
        // HMAC's, so a one-byte tag would be easy to guess.
        if tag.len() != TAG_BYTES {
            return Err(CallbackError::Malformed);
        }
        self.mac(action, job_id, presser_user_id)
            .verify_truncated_left(&tag)
            .map_err(|_| CallbackError::NotYours)?;
        Ok((action, job_id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "job_abc123def456";
    const ALICE: u64 = 123_456_789;
    const BOB: u64 = 987_654_321;

    fn key() -> CallbackKey {
        CallbackKey::new(b"a test secret of thirty-two bytes!")
    }

    #[test]
    fn round_trip_for_every_action() {
        let key = key();
        for action in Action::ALL {
            let data = key.encode(action, JOB, ALICE);
            assert!(data.starts_with(&format!("{}:{JOB}:", action.code())), "{data}");
            assert_eq!(key.decode(&data, ALICE), Ok((action, JOB.to_owned())));
            assert_eq!(Action::from_code(action.code()), Some(action));
        }
        assert_eq!(Action::from_code('x'), None);
    }

    #[test]
    fn fits_telegram_limit() {
        let key = key();
        let data = key.encode(Action::Variations, JOB, u64::MAX);
        assert_eq!(data.len(), 2 + JOB.len() + 1 + TAG_CHARS);
        assert!(data.len() <= MAX_CALLBACK_DATA_BYTES, "{} bytes", data.len());
        let longest_job = "j".repeat(45);
        assert_eq!(
            key.encode(Action::Reroll, &longest_job, ALICE).len(),
            MAX_CALLBACK_DATA_BYTES
        );
    }

    #[test]
    fn tag_is_hmac_of_code_job_and_user() {
        let secret = b"another secret";
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("key");
        mac.update(format!("u:{JOB}:{ALICE}").as_bytes());
        let digest = mac.finalize().into_bytes();
        let expected = format!("u:{JOB}:{}", URL_SAFE_NO_PAD.encode(&digest[..12]));
        assert_eq!(CallbackKey::new(secret).encode(Action::Upscale, JOB, ALICE), expected);
    }

    #[test]
    fn another_users_press_is_refused() {
        let key = key();
        let data = key.encode(Action::Reroll, JOB, ALICE);
        assert_eq!(key.decode(&data, BOB), Err(CallbackError::NotYours));
        // A different secret (another deployment, a rotated key) refuses too.
        assert_eq!(
            CallbackKey::new(b"other").decode(&data, ALICE),
            Err(CallbackError::NotYours)
        );
    }

    #[test]
    fn edited_data_is_refused() {
        let key = key();
        let data = key.encode(Action::Delete, JOB, ALICE);
        let tag = data.rsplit_once(':').expect("tag").1;
        // Another action or another job with the same tag.
        assert_eq!(
            key.decode(&format!("r:{JOB}:{tag}"), ALICE),
            Err(CallbackError::NotYours)
        );
        assert_eq!(
            key.decode(&format!("d:job_abc123def457:{tag}"), ALICE),
            Err(CallbackError::NotYours)
        );
        // A changed tag.
        let mut changed = tag.to_owned();
        let last = if changed.ends_with('A') { "B" } else { "A" };
        changed.replace_range(15.., last);
        assert_eq!(
            key.decode(&format!("d:{JOB}:{changed}"), ALICE),
            Err(CallbackError::NotYours)
        );
        // A shortened tag is not accepted as a truncated HMAC.
        for short in [&tag[..2], &tag[..8], &tag[..15]] {
            assert_eq!(
                key.decode(&format!("d:{JOB}:{short}"), ALICE),
                Err(CallbackError::Malformed),
                "{short}"
            );
        }
    }

    #[test]
    fn malformed_data() {
        let key = key();
        let data = key.encode(Action::Reroll, JOB, ALICE);
        let tag = data.rsplit_once(':').expect("tag").1;
        for bad in [
            String::new(),
            "r".into(),
            "r:job".into(),
            format!("x:{JOB}:{tag}"),
            format!("rr:{JOB}:{tag}"),
            format!(":{JOB}:{tag}"),
            format!("r::{tag}"),
            format!("r:{JOB}:{tag}A"),
            format!("r:{JOB}:{}", "!".repeat(16)),
            format!("r:{JOB}:{}", "=".repeat(16)),
            format!("r:{}:{tag}", "j".repeat(60)),
        ] {
            assert_eq!(key.decode(&bad, ALICE), Err(CallbackError::Malformed), "{bad}");
        }
    }

    #[test]
    fn job_ids_with_colons_still_round_trip() {
        let key = key();
        let data = key.encode(Action::SameSeed, "a:b", ALICE);
        assert_eq!(key.decode(&data, ALICE), Ok((Action::SameSeed, "a:b".to_owned())));
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", CallbackKey::new(b"hunter2-very-secret"));
        assert_eq!(text, "CallbackKey(<secret>)");
        assert!(!text.contains("hunter2"));
    }
}
