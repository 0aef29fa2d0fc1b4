//! The bot's configuration, read once from the environment; a missing or bad value stops the
//! bot with a message that names the variable.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_chat::queue::QueueBackend;

/// How the bot hears about updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `getUpdates` long polling (local use, the default).
    Polling,
    /// Telegram POSTs updates to our HTTPS endpoint (`setWebhook`).
    Webhook,
}

/// Everything the bot reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TELEGRAM_BOT_TOKEN` (required).
    pub token: String,
    /// `TELEGRAM_API_URL`: the Bot API server (default `https://api.telegram.org`).
    pub telegram_api_url: reqwest::Url,
    /// `TELEGRAM_BOT_ID`: this bot's `bot_id` on jobs (default `telegram`).
    pub bot_id: String,
    /// `TESSERA_API_URL`: where the internal API is (default `http://127.0.0.1:8000`).
    pub api_url: String,
    /// `TESSERA_SERVICE_KEY`: the service key the internal API takes (required).
    pub service_key: String,
    /// `TELEGRAM_MODE`: `polling` (default) or `webhook`.
    pub mode: Mode,
    /// `TELEGRAM_WEBHOOK_SECRET`: the `X-Telegram-Bot-Api-Secret-Token` Telegram must send
    /// (required in webhook mode; 1–256 of `A-Z a-z 0-9 _ -`).
    pub webhook_secret: Option<String>,
    /// `TELEGRAM_WEBHOOK_URL`: the public HTTPS URL to register with `setWebhook` (webhook mode).
    pub webhook_url: Option<String>,
    /// `TELEGRAM_LISTEN`: where webhook mode listens (default `127.0.0.1:8081`).
    pub listen: std::net::SocketAddr,
    /// `TELEGRAM_CALLBACK_SECRET`: signs inline-button data (default: derived from the token).
    pub callback_secret: Vec<u8>,
    /// `TESSERA_BACKEND` / `TESSERA_DATA_DIR` / `TESSERA_RESOURCE_PREFIX`: where the notify queue
    /// is, as for the API and the worker.
    pub backend: QueueBackend,
}

/// A variable with a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable} is invalid: {reason}")]
pub struct ConfigError {
    variable: &'static str,
    reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let read = |variable: &str| {
            lookup(variable)
                .map(|value| value.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let invalid = |variable: &'static str, reason: &str| ConfigError {
            variable,
            reason: reason.to_owned(),
        };
        let token = read("TELEGRAM_BOT_TOKEN").ok_or_else(|| invalid("TELEGRAM_BOT_TOKEN", "not set"))?;
        if !token.contains(':') || token.chars().any(char::is_whitespace) {
            return Err(invalid(
                "TELEGRAM_BOT_TOKEN",
                "expected <bot id>:<secret>, as BotFather gives it",
            ));
        }
        let telegram_api_url = read("TELEGRAM_API_URL")
            .unwrap_or_else(|| "https://api.telegram.org".into())
            .parse::<reqwest::Url>()
            .map_err(|error| invalid("TELEGRAM_API_URL", &error.to_string()))?;
        let bot_id = read("TELEGRAM_BOT_ID").unwrap_or_else(|| "telegram".into());
        if bot_id.len() > 100
            || !bot_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(invalid(
                "TELEGRAM_BOT_ID",
                "1 to 100 letters, digits, '-', '_', '.', ':'",
            ));
        }
        let api_url = read("TESSERA_API_URL").unwrap_or_else(|| "http://127.0.0.1:8000".into());
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(invalid("TESSERA_API_URL", "expected an http:// or https:// URL"));
        }
        let service_key = read("TESSERA_SERVICE_KEY").ok_or_else(|| {
            invalid(
                "TESSERA_SERVICE_KEY",
                "not set (make one with `cargo run -- admin create-service-key --name telegram`)",
            )
        })?;
        let mode = match read("TELEGRAM_MODE").as_deref() {
            None | Some("polling") => Mode::Polling,
            Some("webhook") => Mode::Webhook,
            Some(_) => return Err(invalid("TELEGRAM_MODE", "expected 'polling' or 'webhook'")),
        };
        let webhook_secret = read("TELEGRAM_WEBHOOK_SECRET");
        if let Some(secret) = &webhook_secret
            && (secret.len() > 256
                || !secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        {
            return Err(invalid(
                "TELEGRAM_WEBHOOK_SECRET",
                "1 to 256 of A-Z, a-z, 0-9, '_' and '-'",
            ));
        }
        if mode == Mode::Webhook && webhook_secret.is_none() {
            return Err(invalid("TELEGRAM_WEBHOOK_SECRET", "required in webhook mode"));
        }
        let listen = read("TELEGRAM_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8081".into())
            .parse()
            .map_err(|_| invalid("TELEGRAM_LISTEN", "expected host:port"))?;
        let callback_secret = match read("TELEGRAM_CALLBACK_SECRET") {
            Some(secret) if secret.len() >= 32 => secret.into_bytes(),
            Some(_) => return Err(invalid("TELEGRAM_CALLBACK_SECRET", "must be at least 32 characters")),
            None => derived_secret(&token),
        };
        let backend = QueueBackend::from_lookup(&lookup).map_err(|(variable, reason)| invalid(variable, &reason))?;
        Ok(Self {
            token,
            telegram_api_url,
            bot_id,
            api_url: api_url.trim_end_matches('/').to_owned(),
            service_key,
            mode,
            webhook_secret,
            webhook_url: read("TELEGRAM_WEBHOOK_URL"),
            listen,
            callback_secret,
            backend,
        })
    }
}

/// A callback-signing secret derived from the bot token, so that a bot works without one more
/// setting (the token is already the bot's master secret).
fn derived_secret(token: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"tessera telegram callback data");
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = vec![
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("TESSERA_SERVICE_KEY", "tessera_svc_x_y"),
        ];
        all.extend_from_slice(pairs);
        Config::from_lookup(|name| {
            all.iter()
                .rev()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn defaults_are_local_polling() {
        let config = config(&[]).expect("valid");
        assert_eq!(config.mode, Mode::Polling);
        assert_eq!(config.api_url, "http://127.0.0.1:8000");
        assert_eq!(config.backend, QueueBackend::Embedded(".tessera".into()));
        assert_eq!(config.callback_secret.len(), 32);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (variable, value) in [
            ("TELEGRAM_BOT_TOKEN", "no-colon"),
            ("TELEGRAM_API_URL", "not a url"),
            ("TELEGRAM_BOT_ID", "spaces are bad"),
            ("TESSERA_API_URL", "ftp://x"),
            ("TELEGRAM_MODE", "push"),
            ("TELEGRAM_WEBHOOK_SECRET", "has spaces"),
            ("TELEGRAM_CALLBACK_SECRET", "short"),
            ("TESSERA_BACKEND", "postgres"),
        ] {
            let error = config(&[(variable, value)]).expect_err(variable).to_string();
            assert!(error.starts_with(variable), "{error}");
        }
        let error = config(&[("TELEGRAM_MODE", "webhook")])
            .expect_err("no secret")
            .to_string();
        assert!(error.starts_with("TELEGRAM_WEBHOOK_SECRET"), "{error}");
    }
}
