//! The dev server's configuration, read once from environment variables. A bad value stops the
//! program with a message that names the variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use tessera_api::auth::AuthConfig;
use tessera_core::request::WebhookRules;
use tessera_store::definitions::Naming;

/// The variables of the auth settings, read by [`AuthConfig::from_lookup`].
const AUTH_VARIABLES: [&str; 4] = [
    "TESSERA_JWT_KEYS",
    "TESSERA_JWT_ISSUER",
    "TESSERA_JWT_AUDIENCE",
    "TESSERA_TRUST_FORWARDED_FOR",
];

/// Which backend serves the ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// One SQLite file and a local folder under the data directory.
    Embedded,
    /// DynamoDB, SQS and S3, configured the standard AWS way.
    Aws,
}

/// Everything the dev server reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TESSERA_ADDR`: where to listen (default `127.0.0.1:8000`).
    pub addr: SocketAddr,
    /// `TESSERA_DATA_DIR`: the embedded store's folder (default `.tessera`).
    pub data_dir: PathBuf,
    /// `TESSERA_BACKEND`: `embedded` (default) or `aws`.
    pub backend: BackendKind,
    /// `TESSERA_PUBLIC_URL`: the base URL clients reach this server at (default `http://<addr>`).
    pub public_url: Option<String>,
    /// `TESSERA_RESOURCE_PREFIX`: the prefix of AWS resource names (default `tessera`).
    pub naming: Naming,
    /// `TESSERA_WEBHOOK_ALLOW_HTTP` / `TESSERA_WEBHOOK_ALLOW_PRIVATE`: what webhook URLs may be
    /// (both `false` by default: https to public hosts only).
    pub webhooks: WebhookRules,
    /// `TESSERA_WEBHOOK_KEY`: the key webhook secrets are derived from, 32 characters or more
    /// (default: one made on first start and kept in the data folder).
    pub webhook_key: Option<String>,
    /// `TESSERA_WORKER`: run one GPU worker in process (`on`, the default, or `off`).
    pub worker: bool,
    /// `COMFYUI_URL`: the ComfyUI the in-process worker drives (default `http://127.0.0.1:8188`).
    pub comfyui_url: String,
    /// `TESSERA_WORKFLOWS_DIR`: the in-process worker's workflows (default `gpu-worker/workflows`).
    pub workflows_dir: PathBuf,
    /// `TESSERA_CANARY_SECONDS`: how often the sweep runs a canary job, 60–86400 (default: off).
    pub canary_every: Option<std::time::Duration>,
    /// `TESSERA_CATALOG`: a catalog file (plans, models, prices, content policy) to use
    /// instead of the shipped `functions/core/seed/catalog.json`.
    pub catalog: Option<PathBuf>,
    /// The auth variables as read (`TESSERA_JWT_*`, `TESSERA_TRUST_FORWARDED_FOR`).
    auth_variables: BTreeMap<&'static str, String>,
}

/// A variable with a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    variable: &'static str,
    value: String,
    reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let read = |variable: &'static str| lookup(variable).filter(|value| !value.is_empty());
        let invalid = |variable: &'static str, value: &str, reason: &str| ConfigError {
            variable,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let addr = match read("TESSERA_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 8000)),
            Some(value) => value
                .parse()
                .map_err(|_| invalid("TESSERA_ADDR", &value, "expected host:port, e.g. 127.0.0.1:8000"))?,
        };
        let backend = match read("TESSERA_BACKEND").as_deref() {
            None | Some("embedded") => BackendKind::Embedded,
            Some("aws") => BackendKind::Aws,
            Some(other) => return Err(invalid("TESSERA_BACKEND", other, "expected 'embedded' or 'aws'")),
        };
        let public_url = match read("TESSERA_PUBLIC_URL") {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(invalid(
                    "TESSERA_PUBLIC_URL",
                    &url,
                    "expected an http:// or https:// URL",
                ));
            }
            url => url.map(|url| url.trim_end_matches('/').to_owned()),
        };
        let naming = match read("TESSERA_RESOURCE_PREFIX") {
            None => Naming::default(),
            Some(prefix) => {
                Naming::new(&prefix).map_err(|error| invalid("TESSERA_RESOURCE_PREFIX", &prefix, &error.to_string()))?
            }
        };
        let webhooks = tessera_api::v1::webhook_rules(|name: &str| lookup(name)).map_err(|(variable, reason)| {
            let value = read(variable).unwrap_or_default();
            invalid(variable, &value, &reason)
        })?;
        let auth_variables = AUTH_VARIABLES
            .into_iter()
            .filter_map(|variable| read(variable).map(|value| (variable, value)))
            .collect();
        let config = Self {
            addr,
            data_dir: read("TESSERA_DATA_DIR").map_or_else(|| PathBuf::from(".tessera"), PathBuf::from),
            backend,
            public_url,
            naming,
            webhooks,
            webhook_key: match read("TESSERA_WEBHOOK_KEY") {
                None => None,
                Some(key) => match tessera_api::v1::WebhookKey::parse(&key) {
                    Ok(_) => Some(key),
                    Err(reason) => return Err(invalid("TESSERA_WEBHOOK_KEY", "(hidden)", &reason)),
                },
            },
            catalog: read("TESSERA_CATALOG").map(PathBuf::from),
            worker: match read("TESSERA_WORKER").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => return Err(invalid("TESSERA_WORKER", other, "expected 'on' or 'off'")),
            },
            comfyui_url: match read("COMFYUI_URL") {
                None => "http://127.0.0.1:8188".into(),
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    url.trim_end_matches('/').to_owned()
                }
                Some(other) => return Err(invalid("COMFYUI_URL", &other, "expected an http:// or https:// URL")),
            },
            workflows_dir: read("TESSERA_WORKFLOWS_DIR")
                .map_or_else(|| PathBuf::from("gpu-worker/workflows"), PathBuf::from),
            canary_every: match read("TESSERA_CANARY_SECONDS") {
                None => None,
                Some(raw) => Some(
                    raw.parse::<u64>()
                        .ok()
                        .filter(|seconds| (60..=86_400).contains(seconds))
                        .map(std::time::Duration::from_secs)
                        .ok_or_else(|| invalid("TESSERA_CANARY_SECONDS", &raw, "expected 60 to 86400"))?,
                ),
            },
            auth_variables,
        };
        config.auth(Some(format!("check:{}", "x".repeat(32))))?;
        Ok(config)
    }

    /// Reads and installs the catalog of `TESSERA_CATALOG`, if set, as the process's own.
    pub fn install_catalog(&self) -> anyhow::Result<()> {
        let Some(path) = &self.catalog else {
            return Ok(());
        };
        tessera_core::Catalog::install(tessera_core::Catalog::load(path)?);
        Ok(())
    }

    /// The auth settings; `fallback_keys` stands in for an unset `TESSERA_JWT_KEYS` (the dev
    /// server's own key in its data folder).
    pub fn auth(&self, fallback_keys: Option<String>) -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_lookup(|name| self.auth_variables.get(name).cloned(), fallback_keys).map_err(
            |(variable, reason)| ConfigError {
                variable,
                value: if variable == "TESSERA_JWT_KEYS" {
                    "<hidden>".into()
                } else {
                    self.auth_variables.get(variable).cloned().unwrap_or_default()
                },
                reason,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_spec_development_url() {
        let config = config(&[]).expect("defaults");
        assert_eq!(config.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(config.data_dir, PathBuf::from(".tessera"));
        assert_eq!(config.backend, BackendKind::Embedded);
        assert_eq!(config.naming.prefix(), "tessera");
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            ("TESSERA_ADDR", "0.0.0.0:9000"),
            ("TESSERA_DATA_DIR", "/tmp/t"),
            ("TESSERA_BACKEND", "aws"),
            ("TESSERA_PUBLIC_URL", "https://dev.example.com/"),
            ("TESSERA_RESOURCE_PREFIX", "tessera-staging"),
        ])
        .expect("valid");
        assert_eq!(config.addr.port(), 9000);
        assert_eq!(config.backend, BackendKind::Aws);
        assert_eq!(config.public_url.as_deref(), Some("https://dev.example.com"));
        assert_eq!(config.naming.physical("jobs"), "tessera-staging-jobs");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (variable, value) in [
            ("TESSERA_ADDR", "localhost"),
            ("TESSERA_BACKEND", "postgres"),
            ("TESSERA_PUBLIC_URL", "ftp://x"),
            ("TESSERA_RESOURCE_PREFIX", "Bad_Prefix"),
            ("TESSERA_JWT_KEYS", "k1:too-short"),
            ("TESSERA_TRUST_FORWARDED_FOR", "yes"),
            ("TESSERA_WEBHOOK_ALLOW_HTTP", "yes"),
            ("TESSERA_WEBHOOK_KEY", "too-short"),
            ("TESSERA_WORKER", "maybe"),
            ("TESSERA_CANARY_SECONDS", "5"),
            ("COMFYUI_URL", "localhost:8188"),
        ] {
            let error = config(&[(variable, value)]).expect_err(variable).to_string();
            assert!(error.starts_with(variable), "{error}");
        }
    }
}
