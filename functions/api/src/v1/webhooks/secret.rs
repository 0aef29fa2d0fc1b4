//! Webhook secrets. HMAC signing needs the secret itself, so it can't be stored as a one-way
//! hash. Tessera stores neither the secret nor an encrypted copy: each tenant's record holds a
//! random salt, and the secret is `whsec_` + base64url(HMAC-SHA256(server key, tenant, salt)),
//! derived when a webhook is signed. A copy of the table alone reveals no secret, the server key
//! alone reveals none either, and a rotation is a new salt.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_core::TenantId;

/// The prefix of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// How long a rotated-out secret keeps signing next to the new one.
pub const ROTATION_OVERLAP_SECONDS: i64 = 24 * 60 * 60;

/// The shortest server key accepted, in characters.
pub const MIN_KEY_CHARS: usize = 32;

/// The server key webhook secrets are derived from (`TESSERA_WEBHOOK_KEY`).
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(..)")
    }
}

impl WebhookKey {
    /// The key from its configured text: at least [`MIN_KEY_CHARS`] characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.chars().count() < MIN_KEY_CHARS {
            return Err(format!("must be at least {MIN_KEY_CHARS} characters"));
        }
        Ok(Self(raw.as_bytes().to_vec()))
    }

    /// The tenant's secret for `salt`.
    pub fn secret(&self, tenant: &TenantId, salt: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"tessera webhook secret\0");
        mac.update(tenant.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(salt.as_bytes());
        format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

/// A fresh random salt (128 bits, hex).
pub fn new_salt() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_differ_by_tenant_salt_and_key_and_are_stable() {
        let key = WebhookKey::parse("k".repeat(32).as_str()).expect("key");
        let other_key = WebhookKey::parse("j".repeat(32).as_str()).expect("key");
        let tenant = TenantId::parse("ten_000000000001").expect("tenant");
        let other = TenantId::parse("ten_000000000002").expect("tenant");
        let secret = key.secret(&tenant, "salt");
        assert!(secret.starts_with("whsec_") && secret.len() == 6 + 43, "{secret}");
        assert_eq!(secret, key.secret(&tenant, "salt"));
        assert_ne!(secret, key.secret(&tenant, "salt2"));
        assert_ne!(secret, key.secret(&other, "salt"));
        assert_ne!(secret, other_key.secret(&tenant, "salt"));
        assert!(WebhookKey::parse("short").is_err());
        assert_ne!(new_salt(), new_salt());
    }
}
