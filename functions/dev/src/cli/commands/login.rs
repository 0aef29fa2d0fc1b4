//! `tessera login` (e-mail and password, or an API key) and `tessera logout`.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{Value, json};

use super::Context;
use crate::cli::args::LoginArgs;
use crate::cli::client::{ApiClient, Call, session_from};
use crate::cli::config_file::{ConfigFile, Credential, Target};
use crate::cli::error::CliError;
use crate::cli::output::Outcome;

/// Signs in and stores the credential for the resolved API.
pub async fn login(args: LoginArgs, context: &Context) -> Result<Outcome, CliError> {
    let api_url = context.target.api_url.clone();
    let stored = match args.api_key {
        Some(key) => login_with_key(key, &api_url).await?,
        None => login_with_password(args.email, &api_url).await?,
    };
    let mut file = ConfigFile::load(&context.config_path)?;
    file.api_url = Some(api_url.clone());
    file.api_key = None;
    file.session = None;
    let kind = match stored.credential {
        Credential::ApiKey(key) => {
            file.api_key = Some(key);
            "api_key"
        }
        Credential::Session(session) => {
            file.session = Some(session);
            "session"
        }
        Credential::None => "none",
    };
    file.save(&context.config_path)?;
    let path = context.config_path.display().to_string();
    let text = format!("Logged in to {api_url} as {} (saved in {path}).", stored.email);
    let json = json!({"api_url": api_url, "email": stored.email, "credential": kind, "config": path});
    Ok(Outcome::success(json, text))
}

/// A verified credential and whose it is.
struct Stored {
    credential: Credential,
    email: String,
}

/// Checks the key (given, or read from stdin) with `GET /api/auth/me`.
async fn login_with_key(key: Option<String>, api_url: &str) -> Result<Stored, CliError> {
    let key = match key {
        Some(key) => key,
        None => read_secret("API key: ")?,
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err(CliError::Usage("no API key given".into()));
    }
    let target = Target {
        api_url: api_url.to_owned(),
        credential: Credential::ApiKey(key.clone()),
    };
    let me = ApiClient::new(target, None)?.json(Call::get("/api/auth/me")).await?;
    Ok(Stored {
        credential: Credential::ApiKey(key),
        email: email_of(&me),
    })
}

/// Signs in with an e-mail and password (`POST /api/auth/login`).
async fn login_with_password(email: Option<String>, api_url: &str) -> Result<Stored, CliError> {
    let (email, password) = read_email_and_password(email)?;
    let target = Target {
        api_url: api_url.to_owned(),
        credential: Credential::None,
    };
    let body = json!({"email": email, "password": password});
    let pair = ApiClient::new(target, None)?
        .json(Call::post("/api/auth/login", body))
        .await?;
    Ok(Stored {
        credential: Credential::Session(session_from(&pair, "POST /api/auth/login")?),
        email,
    })
}

/// Forgets the stored credential; a session is also ended on the server (if it answers).
pub async fn logout(context: &Context) -> Result<Outcome, CliError> {
    let mut file = ConfigFile::load(&context.config_path)?;
    let had_credential = file.api_key.is_some() || file.session.is_some();
    if let Some(session) = file.session.clone() {
        let target = Target {
            api_url: file.api_url.clone().unwrap_or_else(|| context.target.api_url.clone()),
            credential: Credential::Session(session),
        };
        if let Ok(mut client) = ApiClient::new(target, None) {
            let _ = client.send(Call::new(reqwest::Method::POST, "/api/auth/logout")).await;
        }
    }
    file.api_key = None;
    file.session = None;
    if had_credential {
        file.save(&context.config_path)?;
    }
    let text = match had_credential {
        true => "Logged out.",
        false => "No credential was stored.",
    };
    Ok(Outcome::success(json!({"logged_out": had_credential}), text))
}

/// The e-mail of a `/api/auth/me` answer.
fn email_of(me: &Value) -> String {
    me.pointer("/user/email")
        .and_then(Value::as_str)
        .unwrap_or("an unnamed account")
        .to_owned()
}

/// The e-mail (given, asked, or stdin's first line) and the password (asked without echo, or
/// stdin's next line).
fn read_email_and_password(email: Option<String>) -> Result<(String, String), CliError> {
    let stdin_error = |error| CliError::local("reading stdin", error);
    if std::io::stdin().is_terminal() {
        let email = match email {
            Some(email) => email,
            None => {
                eprint!("Email: ");
                let _ = std::io::stderr().flush();
                read_line().map_err(stdin_error)?
            }
        };
        let password = rpassword::prompt_password("Password: ").map_err(stdin_error)?;
        return Ok((email.trim().to_owned(), password));
    }
    let email = match email {
        Some(email) => email,
        None => read_line().map_err(stdin_error)?,
    };
    let password = read_line().map_err(stdin_error)?;
    if email.trim().is_empty() || password.is_empty() {
        return Err(CliError::Usage(
            "give the e-mail and the password on stdin, one a line (or --email and the password)".into(),
        ));
    }
    Ok((email.trim().to_owned(), password))
}

/// A secret: asked without echo on a terminal, else stdin's first line.
fn read_secret(prompt: &str) -> Result<String, CliError> {
    let result = match std::io::stdin().is_terminal() {
        true => rpassword::prompt_password(prompt),
        false => read_line(),
    };
    result.map_err(|error| CliError::local("reading stdin", error))
}

/// One line of stdin, without its line ending.
fn read_line() -> std::io::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
