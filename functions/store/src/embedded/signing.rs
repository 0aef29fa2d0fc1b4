//! Signed blob URLs: an HMAC-SHA256 over bucket, key and expiry, with a random key that is
//! created once in the store's folder and kept across restarts, so issued URLs stay valid.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngCore;
use sha2::Sha256;

use super::{EmbeddedStore, random_hex};
use crate::error::{StoreError, StoreResult};

/// The length of the signing key.
const KEY_BYTES: usize = 32;

/// What a key segment keeps as is in a URL path: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The signer of blob URLs.
pub(super) type Signer = Hmac<Sha256>;

/// Why a signed blob URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureRefusal {
    /// The URL was genuine but its time has passed.
    Expired,
    /// The signature does not match the bucket, key and expiry (tampered, or from another key).
    BadSignature,
}

impl fmt::Display for SignatureRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "the signed URL has expired",
            Self::BadSignature => "the URL signature is not valid",
        })
    }
}

impl std::error::Error for SignatureRefusal {}

impl EmbeddedStore {
    /// Checks a signed blob URL's parts, as decoded from its path and query: the signature
    /// (compared in constant time) first, then that `expires` (Unix seconds) has not passed.
    pub fn verify_signature(
        &self,
        bucket: &str,
        key: &str,
        expires: i64,
        signature_hex: &str,
    ) -> Result<(), SignatureRefusal> {
        let signature = hex::decode(signature_hex).map_err(|_| SignatureRefusal::BadSignature)?;
        self.mac(bucket, key, expires)
            .verify_slice(&signature)
            .map_err(|_| SignatureRefusal::BadSignature)?;
        if expires < self.now_unix() {
            return Err(SignatureRefusal::Expired);
        }
        Ok(())
    }

    /// The URL that GETs `key` from `bucket` until `expires` (Unix seconds).
    pub(super) fn signed_url_until(&self, bucket: &str, key: &str, expires: i64) -> String {
        let path: Vec<String> = key
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        let signature = hex::encode(self.mac(bucket, key, expires).finalize().into_bytes());
        format!(
            "{}/blobs/{bucket}/{}?expires={expires}&signature={signature}",
            self.public_url,
            path.join("/")
        )
    }

    fn mac(&self, bucket: &str, key: &str, expires: i64) -> Signer {
        // Neither bucket names nor keys hold newlines, so the message is unambiguous.
        let mut mac = self.signer.clone();
        mac.update(format!("{bucket}\n{key}\n{expires}").as_bytes());
        mac
    }
}

/// The signer with the key in `path`, creating the key on first use.
pub(super) fn load_or_create_signer(path: &Path) -> StoreResult<Signer> {
    let key = match std::fs::read(path) {
        Ok(key) => key,
        Err(error) if error.kind() == ErrorKind::NotFound => create_key(path)?,
        Err(error) => return Err(error.into()),
    };
    if key.len() != KEY_BYTES {
        return Err(StoreError::Internal(format!(
            "the signing key {} holds {} bytes, not {KEY_BYTES}",
            path.display(),
            key.len()
        )));
    }
    Signer::new_from_slice(&key).map_err(|error| StoreError::Internal(format!("signing key: {error}")))
}

/// Writes a fresh key to `path`, unless another process got there first: then its key wins,
/// so that every process sharing the folder signs alike.
fn create_key(path: &Path) -> StoreResult<Vec<u8>> {
    let mut key = vec![0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    let temporary = path.with_extension(format!("tmp-{}", random_hex(8)));
    write_private(&temporary, &key)?;
    // A hard link publishes the complete file at once and never replaces an existing one.
    let published = match std::fs::hard_link(&temporary, path) {
        Err(error) if error.kind() == ErrorKind::AlreadyExists => std::fs::read(path),
        Err(_) => std::fs::rename(&temporary, path).map(|()| key),
        Ok(()) => Ok(key),
    };
    if let Err(error) = std::fs::remove_file(&temporary)
        && error.kind() != ErrorKind::NotFound
    {
        tracing::warn!(path = %temporary.display(), %error, "could not remove a temporary key file");
    }
    Ok(published?)
}

/// Creates `path` readable by its owner only, with `bytes`, synced to disk.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests;
