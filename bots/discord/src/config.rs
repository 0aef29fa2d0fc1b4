//! The Discord bot's configuration, read once from the environment; a missing or bad value
//! stops the bot with a message that names the variable.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_chat::queue::QueueBackend;

/// Everything the bot reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DISCORD_APPLICATION_ID` (required).
    pub application_id: u64,
    /// `DISCORD_PUBLIC_KEY`: the application's Ed25519 public key, 64 hex digits (required).
    pub public_key: String,
    /// `DISCORD_BOT_TOKEN` (required): for channel messages and command registration.
    pub bot_token: String,
    /// `DISCORD_API_URL`: another base for Discord's REST API (tests point it at a fake).
    pub api_url: Option<String>,
    /// `DISCORD_BOT_ID`: this bot's `bot_id` on jobs (default `discord`).
    pub bot_id: String,
    /// `TESSERA_API_URL`: where the internal API is (default `http://127.0.0.1:8000`).
    pub api_base: String,
    /// `TESSERA_SERVICE_KEY`: the service key the internal API takes (required).
    pub service_key: String,
    /// `DISCORD_LISTEN`: where the interactions endpoint listens (default `127.0.0.1:8082`).
    pub listen: std::net::SocketAddr,
    /// `DISCORD_BUTTON_SECRET`: signs button ids (default: derived from the bot token).
    pub button_secret: Vec<u8>,
    /// Where the notify queue lives (`TESSERA_BACKEND`, ...).
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
        let required = |variable: &'static str| read(variable).ok_or_else(|| invalid(variable, "not set"));
        let application_id = required("DISCORD_APPLICATION_ID")?
            .parse()
            .map_err(|_| invalid("DISCORD_APPLICATION_ID", "expected the application's numeric id"))?;
        let public_key = required("DISCORD_PUBLIC_KEY")?.to_ascii_lowercase();
        if public_key.len() != 64 || !public_key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "DISCORD_PUBLIC_KEY",
                "expected 64 hex digits, as the developer portal shows it",
            ));
        }
        if serenity::interactions_endpoint::Verifier::try_new(hex_key(&public_key)).is_err() {
            return Err(invalid("DISCORD_PUBLIC_KEY", "not a valid Ed25519 public key"));
        }
        let bot_token = required("DISCORD_BOT_TOKEN")?;
        let api_url = read("DISCORD_API_URL");
        if api_url
            .as_deref()
            .is_some_and(|url| !(url.starts_with("http://") || url.starts_with("https://")))
        {
            return Err(invalid("DISCORD_API_URL", "expected an http:// or https:// URL"));
        }
        let bot_id = read("DISCORD_BOT_ID").unwrap_or_else(|| "discord".into());
        if bot_id.len() > 100
            || !bot_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(invalid(
                "DISCORD_BOT_ID",
                "1 to 100 letters, digits, '-', '_', '.', ':'",
            ));
        }
        let api_base = read("TESSERA_API_URL").unwrap_or_else(|| "http://127.0.0.1:8000".into());
        if !(api_base.starts_with("http://") || api_base.starts_with("https://")) {
            return Err(invalid("TESSERA_API_URL", "expected an http:// or https:// URL"));
        }
        let service_key = required("TESSERA_SERVICE_KEY")?;
        let listen = read("DISCORD_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8082".into())
            .parse()
            .map_err(|_| invalid("DISCORD_LISTEN", "expected host:port"))?;
        let button_secret = match read("DISCORD_BUTTON_SECRET") {
            Some(secret) if secret.len() >= 32 => secret.into_bytes(),
            Some(_) => return Err(invalid("DISCORD_BUTTON_SECRET", "must be at least 32 characters")),
            None => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(bot_token.as_bytes()).expect("HMAC takes keys of any length");
                mac.update(b"tessera discord button ids");
                mac.finalize().into_bytes().to_vec()
            }
        };
        let backend = QueueBackend::from_lookup(&lookup).map_err(|(variable, reason)| invalid(variable, &reason))?;
        Ok(Self {
            application_id,
            public_key,
            bot_token,
            api_url,
            bot_id,
            api_base: api_base.trim_end_matches('/').to_owned(),
            service_key,
            listen,
            button_secret,
            backend,
        })
    }
}

/// The 32 bytes of a checked 64-hex-digit key.
fn hex_key(hex: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    for (index, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).unwrap_or_default();
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public key of RFC 8032's first test vector.
    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = vec![
            ("DISCORD_APPLICATION_ID", "123456789012345678"),
            ("DISCORD_PUBLIC_KEY", KEY),
            ("DISCORD_BOT_TOKEN", "bot-token"),
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
    fn defaults_are_local() {
        let config = config(&[]).expect("valid");
        assert_eq!(config.application_id, 123_456_789_012_345_678);
        assert_eq!(config.api_base, "http://127.0.0.1:8000");
        assert_eq!(config.backend, QueueBackend::Embedded(".tessera".into()));
        assert_eq!(config.button_secret.len(), 32);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (variable, value) in [
            ("DISCORD_APPLICATION_ID", "abc"),
            ("DISCORD_PUBLIC_KEY", "abcd"),
            ("DISCORD_API_URL", "discord.local"),
            ("DISCORD_BOT_ID", "has spaces"),
            ("TESSERA_API_URL", "ftp://x"),
            ("DISCORD_LISTEN", "nowhere"),
            ("DISCORD_BUTTON_SECRET", "short"),
            ("TESSERA_BACKEND", "postgres"),
        ] {
            let error = config(&[(variable, value)]).expect_err(variable).to_string();
            assert!(error.starts_with(variable), "{error}");
        }
    }
}
