//! The client's config file (`<config dir>/tessera/config.json`, or `TESSERA_CONFIG`), written by
//! `tessera login`, readable by its owner only; and where the API's URL and credential come
//! from: flags, then environment variables, then this file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::CliError;

/// The API a client talks to when nothing else says.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8000";
/// The variable that names the config file itself (tests point it at a folder of their own).
pub const CONFIG_VARIABLE: &str = "TESSERA_CONFIG";
/// The variable with the API's base URL.
pub const URL_VARIABLE: &str = "TESSERA_API_URL";
/// The variable with an API key.
pub const KEY_VARIABLE: &str = "TESSERA_API_KEY";

/// What `tessera login` keeps: the API it logged in to and one credential for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// The API's base URL the credential belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// An API key (`tessera login --api-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// A session (`tessera login` with e-mail and password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
}

/// A signed-in session: the refresh token, and the latest access token with its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The single-use refresh token of the latest pair.
    pub refresh_token: String,
    /// The latest access token (a JWT).
    pub access_token: String,
    /// When the access token expires, in unix seconds.
    pub access_expires_at: i64,
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Nothing (login, or a command that will be refused).
    None,
    /// An API key, sent as `Authorization: Bearer <key>`.
    ApiKey(String),
    /// A session: its access token is sent, and renewed with its refresh token.
    Session(Session),
}

/// The API and credential a command uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The API's base URL, without a trailing `/`.
    pub api_url: String,
    /// The credential for it.
    pub credential: Credential,
}

/// Picks the API's URL and credential: a flag, else its variable, else the config file, else
/// the default URL. The file's credential is used only for the URL it was stored for, so a key
/// is never sent to another server.
pub fn resolve(
    url_flag: Option<&str>,
    key_flag: Option<&str>,
    lookup: impl Fn(&str) -> Option<String>,
    file: &ConfigFile,
) -> Target {
    let given = |flag: Option<&str>, variable: &str| {
        flag.map(str::to_owned)
            .or_else(|| lookup(variable))
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let api_url = given(url_flag, URL_VARIABLE)
        .or_else(|| file.api_url.clone())
        .map_or_else(|| DEFAULT_API_URL.to_owned(), |url| normalize_url(&url));
    let file_is_for_this_api = file.api_url.as_deref().map(normalize_url).as_deref() == Some(api_url.as_str());
    let credential = match given(key_flag, KEY_VARIABLE) {
        Some(key) => Credential::ApiKey(key),
        None if file_is_for_this_api => match (&file.api_key, &file.session) {
            (Some(key), _) => Credential::ApiKey(key.clone()),
            (None, Some(session)) => Credential::Session(session.clone()),
            (None, None) => Credential::None,
        },
        None => Credential::None,
    };
    Target { api_url, credential }
}

/// A base URL without trailing slashes.
pub fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// Where the config file is: `TESSERA_CONFIG`, else `<config dir>/tessera/config.json`.
pub fn default_path(lookup: impl Fn(&str) -> Option<String>) -> Result<PathBuf, CliError> {
    if let Some(path) = lookup(CONFIG_VARIABLE).filter(|path| !path.trim().is_empty()) {
        return Ok(PathBuf::from(path));
    }
    dirs::config_dir()
        .map(|dir| dir.join("tessera").join("config.json"))
        .ok_or_else(|| CliError::Usage(format!("no config folder is known here: set {CONFIG_VARIABLE}")))
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                CliError::local(
                    format!("reading {}", path.display()),
                    std::io::Error::new(std::io::ErrorKind::InvalidData, error),
                )
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(CliError::local(format!("reading {}", path.display()), error)),
        }
    }

    /// Writes the file, readable and writable by its owner only: a new file is made with mode
    /// 0600 (never widened and narrowed after) and renamed over the old one.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let failed = |error| CliError::local(format!("writing {}", path.display()), error);
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(failed)?;
        }
        let mut text = serde_json::to_vec_pretty(self).map_err(|error| failed(std::io::Error::other(error)))?;
        text.push(b'\n');
        let staging = staging_path(path);
        match std::fs::remove_file(&staging) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(failed(error)),
            _ => {}
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&staging).map_err(failed)?;
        file.write_all(&text).and_then(|()| file.sync_all()).map_err(failed)?;
        std::fs::rename(&staging, path).map_err(failed)
    }
}

/// `dir` and its missing parents; a folder made here is private to its owner (0700).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The file written before it is renamed to `path`.
fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    fn session() -> Session {
        Session {
            refresh_token: "refresh".into(),
            access_token: "access".into(),
            access_expires_at: 1,
        }
    }

    fn file_for(url: &str) -> ConfigFile {
        ConfigFile {
            api_url: Some(url.into()),
            api_key: Some("tessera_file_key".into()),
            session: None,
        }
    }

    #[test]
    fn nothing_given_means_the_default_url_and_no_credential() {
        let target = resolve(None, None, env(&[]), &ConfigFile::default());
        assert_eq!(target.api_url, DEFAULT_API_URL);
        assert_eq!(target.credential, Credential::None);
    }

    #[test]
    fn flags_beat_variables_which_beat_the_file() {
        let file = file_for("http://file:1");
        let vars = env(&[(URL_VARIABLE, "http://env:2/"), (KEY_VARIABLE, "tessera_env_key")]);
        let from_flags = resolve(Some("http://flag:3"), Some("tessera_flag_key"), &vars, &file);
        assert_eq!(from_flags.api_url, "http://flag:3");
        assert_eq!(from_flags.credential, Credential::ApiKey("tessera_flag_key".into()));

        let from_env = resolve(None, None, &vars, &file);
        assert_eq!(from_env.api_url, "http://env:2");
        assert_eq!(from_env.credential, Credential::ApiKey("tessera_env_key".into()));

        let from_file = resolve(None, None, env(&[]), &file);
        assert_eq!(from_file.api_url, "http://file:1");
        assert_eq!(from_file.credential, Credential::ApiKey("tessera_file_key".into()));
    }

    #[test]
    fn the_files_credential_is_only_sent_to_the_api_it_was_stored_for() {
        let file = file_for("http://file:1/");
        let elsewhere = resolve(Some("http://other:9"), None, env(&[]), &file);
        assert_eq!(elsewhere.credential, Credential::None);
        let same = resolve(Some("http://file:1"), None, env(&[]), &file);
        assert_eq!(same.credential, Credential::ApiKey("tessera_file_key".into()));
        let with_session = ConfigFile {
            api_key: None,
            session: Some(session()),
            ..file
        };
        let target = resolve(None, None, env(&[]), &with_session);
        assert_eq!(target.credential, Credential::Session(session()));
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let target = resolve(
            None,
            None,
            env(&[(URL_VARIABLE, " "), (KEY_VARIABLE, "")]),
            &file_for("http://file:1"),
        );
        assert_eq!(target.api_url, "http://file:1");
        assert_eq!(target.credential, Credential::ApiKey("tessera_file_key".into()));
    }

    #[test]
    fn the_config_variable_names_the_file() {
        let path = default_path(env(&[(CONFIG_VARIABLE, "/tmp/x/config.json")])).expect("path");
        assert_eq!(path, PathBuf::from("/tmp/x/config.json"));
    }

    #[test]
    fn a_saved_file_reads_back_and_is_private_to_its_owner() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("nested").join("config.json");
        assert_eq!(
            ConfigFile::load(&path).expect("missing is empty"),
            ConfigFile::default()
        );
        let config = ConfigFile {
            session: Some(session()),
            ..file_for("http://file:1")
        };
        config.save(&path).expect("save");
        config.save(&path).expect("save again over it");
        assert_eq!(ConfigFile::load(&path).expect("load"), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().expect("dir")), 0o700);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("config.json")]);
    }

    #[test]
    fn a_broken_file_is_a_local_error_naming_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").expect("write");
        let error = ConfigFile::load(&path).expect_err("broken");
        assert!(error.to_string().contains("config.json"), "{error}");
        assert_eq!(error.exit_status(), super::super::error::ExitStatus::Local);
    }
}
