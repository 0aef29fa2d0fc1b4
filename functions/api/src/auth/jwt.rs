//! Access tokens: HS256 JWTs with a `kid`, verified strictly. Only HS256 is accepted, the key is
//! chosen by `kid` among the configured ones (so keys rotate: sign with the newest, verify with
//! all), and every time check uses the injected clock with at most 30 s of leeway.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};

/// The most clock skew forgiven on `exp`, `iat` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: i64 = 30;
/// The shortest signing secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The claims of a Tessera access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's tenant id.
    pub tenant: String,
    /// The user's role.
    pub role: String,
    /// This token's id, revoked on logout.
    pub jti: String,
    /// The session (refresh family) it was issued in.
    pub sid: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// One HMAC key with its id.
#[derive(Clone)]
pub struct SigningKey {
    /// The `kid` header value.
    pub kid: String,
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused. The message never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenRejected(pub &'static str);

/// The configured keys: the first signs, every one verifies.
#[derive(Debug, Clone)]
pub struct JwtKeys {
    keys: Vec<SigningKey>,
    issuer: String,
    audience: String,
}

impl JwtKeys {
    /// Parses `kid:secret[,kid:secret...]` (the first is the signing key); each secret must be
    /// at least [`MIN_SECRET_BYTES`] bytes and each kid unique.
    pub fn parse(spec: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let mut keys: Vec<SigningKey> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (kid, secret) = entry.split_once(':').ok_or("each key is written kid:secret")?;
            if kid.is_empty() || !kid.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err("a kid is letters, digits, '-', '_' or '.'".into());
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "the secret of kid '{kid}' is shorter than {MIN_SECRET_BYTES} bytes"
                ));
            }
            if keys.iter().any(|key| key.kid == kid) {
                return Err(format!("kid '{kid}' is given twice"));
            }
            keys.push(SigningKey {
                kid: kid.to_owned(),
                secret: secret.as_bytes().to_vec(),
            });
        }
        if keys.is_empty() {
            return Err("no key given".into());
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// The issuer (`iss`) tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience (`aud`) tokens carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenRejected> {
        let key = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        encode(&header, claims, &EncodingKey::from_secret(&key.secret)).map_err(|_| TokenRejected("cannot sign"))
    }

    /// Verifies signature, algorithm, `kid`, `iss`, `aud`, and the times against `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenRejected> {
        let header = decode_header(token).map_err(|_| TokenRejected("malformed token"))?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenRejected("token algorithm not accepted"));
        }
        let kid = header.kid.ok_or(TokenRejected("token has no kid"))?;
        let key = self
            .keys
            .iter()
            .find(|key| key.kid == kid)
            .ok_or(TokenRejected("unknown signing key"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims = decode::<Claims>(token, &DecodingKey::from_secret(&key.secret), &validation)
            .map_err(|_| TokenRejected("invalid token"))?
            .claims;
        if now > claims.exp + LEEWAY_SECONDS {
            return Err(TokenRejected("token expired"));
        }
        if claims.iat > now + LEEWAY_SECONDS || claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
            return Err(TokenRejected("token not valid yet"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn key_specs_are_checked() {
        assert!(JwtKeys::parse(&format!("k1:{SECRET}"), "i", "a").is_ok());
        assert!(JwtKeys::parse(&format!("k1:{SECRET},k0:{SECRET}x"), "i", "a").is_ok());
        for bad in [
            "",
            "k1",
            "k1:short",
            &format!("k 1:{SECRET}"),
            &format!("k:{SECRET},k:{SECRET}"),
        ] {
            assert!(JwtKeys::parse(bad, "i", "a").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rotated_out_signer_still_verifies_while_configured() {
        let old = JwtKeys::parse(&format!("old:{SECRET}"), "i", "a").expect("keys");
        let claims = Claims {
            sub: "usr_1".into(),
            tenant: "ten_1".into(),
            role: "member".into(),
            jti: "j".into(),
            sid: "s".into(),
            iat: 100,
            nbf: None,
            exp: 1000,
            iss: "i".into(),
            aud: "a".into(),
        };
        let token = old.sign(&claims).expect("sign");
        let rotated = JwtKeys::parse(&format!("new:{SECRET}new,old:{SECRET}"), "i", "a").expect("keys");
        assert_eq!(rotated.verify(&token, 500), Ok(claims));
        let dropped = JwtKeys::parse(&format!("new:{SECRET}new"), "i", "a").expect("keys");
        assert_eq!(dropped.verify(&token, 500), Err(TokenRejected("unknown signing key")));
    }
}
