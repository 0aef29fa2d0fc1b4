//! Secrets and their hashes: argon2id for passwords, SHA-256 for high-entropy tokens (API keys,
//! service keys, refresh tokens), compared in constant time.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tessera_core::{DomainError, IdSource};

/// Prefix of every user API key: `tessera_<prefix>_<secret>`.
pub const API_KEY_PREFIX: &str = "tessera_";
/// Prefix of every service key: `tessera_svc_<prefix>_<secret>`.
pub const SERVICE_KEY_PREFIX: &str = "tessera_svc_";

/// argon2id at one of OWASP's equivalent recommended costs: 7 MiB, 5 passes, 1 lane (as strong
/// as 19 MiB with 2 passes, for the same CPU time, and it keeps a login inside a small Lambda's
/// memory: the auth function peaks under 25 MB). A stored hash is verified with the cost it
/// names, so hashes made at another cost keep working.
fn argon2() -> Argon2<'static> {
    let params = Params::new(7 * 1024, 5, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into an argon2id PHC string with a random salt.
pub fn hash_password(password: &str) -> Result<String, DomainError> {
    let salt: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt).map_err(|error| DomainError::Internal(error.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| DomainError::Internal(format!("hashing a password: {error}")))
}

/// Whether `password` matches the PHC string `hash`. With no hash (an unknown user), checks
/// against a fixed dummy hash so that the answer takes as long as for a real user.
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not the password of anyone").unwrap_or_default());
    let (hash, real) = match hash {
        Some(hash) => (hash, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    argon2().verify_password(password.as_bytes(), &parsed).is_ok() && real
}

/// Hex SHA-256 of a high-entropy secret (never of a password).
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether two hashes are equal, in time independent of where they differ.
pub fn hashes_match(left: &str, right: &str) -> bool {
    left.as_bytes().ct_eq(right.as_bytes()).into()
}

/// 256 random bits, URL-safe base64 without padding (43 characters).
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A short random token id (for `jti` and session ids): 22 alphanumerics, ~131 bits.
pub fn random_id() -> String {
    rand::rng().sample_iter(Alphanumeric).take(22).map(char::from).collect()
}

/// A newly made key: its public prefix, the full key (shown once) and the hash to store.
#[derive(Debug)]
pub struct NewKey {
    /// The public prefix (12 lowercase alphanumerics).
    pub prefix: String,
    /// The whole key, for the one response that shows it.
    pub full: String,
    /// Hex SHA-256 of `full`.
    pub hash: String,
}

/// Makes a user API key (`service: false`) or a service key.
pub fn new_key(ids: &dyn IdSource, service: bool) -> NewKey {
    let prefix = ids.next_suffix();
    let lead = if service { SERVICE_KEY_PREFIX } else { API_KEY_PREFIX };
    let full = format!("{lead}{prefix}_{}", random_secret());
    let hash = sha256_hex(&full);
    NewKey { prefix, full, hash }
}

/// A presented credential, classified by its shape.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// A user API key, with its prefix.
    ApiKey {
        /// The public prefix.
        prefix: &'a str,
    },
    /// A service key, with its prefix.
    ServiceKey {
        /// The public prefix.
        prefix: &'a str,
    },
    /// Anything else is taken for a JWT.
    Jwt,
}

/// Classifies a credential by its prefix; the secret itself is checked against the stored hash.
pub fn classify(credential: &str) -> Presented<'_> {
    let prefix_of = |rest: &'static str| -> Option<&str> {
        let tail = credential.strip_prefix(rest)?;
        let (prefix, secret) = tail.split_once('_')?;
        let well_formed = prefix.len() == tessera_core::ids::ID_SUFFIX_LEN
            && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && !secret.is_empty();
        well_formed.then_some(prefix)
    };
    if let Some(prefix) = prefix_of(SERVICE_KEY_PREFIX) {
        Presented::ServiceKey { prefix }
    } else if let Some(prefix) = prefix_of(API_KEY_PREFIX) {
        Presented::ApiKey { prefix }
    } else {
        Presented::Jwt
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::RandomIds;

    use super::*;

    #[test]
    fn hashes_made_at_another_cost_still_verify() {
        let earlier = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(19 * 1024, 2, 1, None).expect("params"),
        );
        let salt = SaltString::encode_b64(b"sixteen byte salt").expect("salt");
        let hash = earlier
            .hash_password(b"correct horse battery", &salt)
            .expect("hash")
            .to_string();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("correct horse batterz", Some(&hash)));
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("correct horse batterz", Some(&hash)));
        assert!(!verify_password("not the password of anyone", None));
        assert!(!verify_password("x", Some("not a phc string")));
    }

    #[test]
    fn keys_have_the_documented_shape_and_classify_back() {
        let key = new_key(&RandomIds, false);
        let secret = key
            .full
            .strip_prefix(&format!("tessera_{}_", key.prefix))
            .expect("shape");
        assert_eq!(URL_SAFE_NO_PAD.decode(secret).expect("base64").len(), 32);
        assert_eq!(classify(&key.full), Presented::ApiKey { prefix: &key.prefix });
        assert_eq!(key.hash, sha256_hex(&key.full));

        let service = new_key(&RandomIds, true);
        assert!(service.full.starts_with("tessera_svc_"));
        assert_eq!(
            classify(&service.full),
            Presented::ServiceKey {
                prefix: &service.prefix
            }
        );
        for other in [
            "eyJhbGciOi.x.y",
            "tessera_",
            "tessera_abc_x",
            "tessera_svc_ABCDEFGHIJKL_x",
        ] {
            assert_eq!(classify(other), Presented::Jwt, "{other}");
        }
    }

    #[test]
    fn hashes_compare_by_value() {
        assert!(hashes_match(&sha256_hex("a"), &sha256_hex("a")));
        assert!(!hashes_match(&sha256_hex("a"), &sha256_hex("b")));
        assert!(!hashes_match("ab", "abc"));
    }
}
