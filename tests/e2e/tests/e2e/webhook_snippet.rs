use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Checks a Tessera webhook: `header` is the `X-Tessera-Signature` value, `body` the raw request
/// body, `now` the current unix time. During a secret rotation, call it with each secret you hold.
pub fn verify_webhook(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), &'static str> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("no timestamp")?;
    if (now - timestamp).abs() > 5 * 60 {
        return Err("timestamp outside the 5-minute tolerance");
    }
    for signature in signatures {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret")?;
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&signature).is_ok() {
            return Ok(()); // verify_slice compares in constant time
        }
    }
    Err("no signature matches")
}
