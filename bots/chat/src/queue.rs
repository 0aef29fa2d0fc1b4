//! Where a bot's notify queue lives, read from the same variables as the API and the worker
//! (`TESSERA_BACKEND`, `TESSERA_DATA_DIR`, `TESSERA_RESOURCE_PREFIX`), and the queue port on it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tessera_core::SystemClock;
use tessera_store::Queue;
use tessera_store::aws::AwsStore;
use tessera_store::definitions::Naming;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};

/// Where the notify queue lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueBackend {
    /// The embedded store in this folder, shared with `cargo run`.
    Embedded(PathBuf),
    /// SQS, with this resource prefix.
    Aws(String),
}

impl QueueBackend {
    /// Reads `TESSERA_BACKEND` (`embedded`, the default, or `aws`) with `TESSERA_DATA_DIR`
    /// (default `.tessera`) or `TESSERA_RESOURCE_PREFIX` (default `tessera`); a bad value
    /// answers the variable and why.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, (&'static str, String)> {
        let read = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        match read("TESSERA_BACKEND").as_deref() {
            None | Some("embedded") => Ok(Self::Embedded(
                read("TESSERA_DATA_DIR").map_or_else(|| PathBuf::from(".tessera"), PathBuf::from),
            )),
            Some("aws") => Ok(Self::Aws(
                read("TESSERA_RESOURCE_PREFIX").unwrap_or_else(|| "tessera".into()),
            )),
            Some(_) => Err(("TESSERA_BACKEND", "expected 'embedded' or 'aws'".into())),
        }
    }

    /// The queue port on this backend.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Queue>> {
        Ok(match self {
            Self::Embedded(dir) => Arc::new(
                EmbeddedStore::open(EmbeddedConfig {
                    dir: dir.clone(),
                    public_url: "http://127.0.0.1".into(),
                    clock: Arc::new(SystemClock),
                })
                .with_context(|| format!("opening the embedded store in {}", dir.display()))?,
            ),
            Self::Aws(prefix) => {
                let naming = Naming::new(prefix).context("TESSERA_RESOURCE_PREFIX is invalid")?;
                Arc::new(AwsStore::from_env(naming, Arc::new(SystemClock)).await?)
            }
        })
    }
}
