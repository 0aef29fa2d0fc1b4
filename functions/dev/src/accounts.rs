//! Account set-up for local use: the dev server's own JWT and webhook keys, the demo account made on first
//! start, and the admin commands (`admin create-admin`, `admin create-service-key`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use tessera_api::auth::secrets::random_secret;
use tessera_api::auth::{AuthError, AuthService};
use tessera_core::Role;

/// The demo user's e-mail.
pub const DEMO_EMAIL: &str = "demo@tessera.local";
const JWT_KEYS_FILE: &str = "jwt.keys";
const WEBHOOK_KEY_FILE: &str = "webhook.key";

/// The JWT key of this data folder (`<dir>/jwt.keys`, made on first use, readable by the owner
/// only), used when `TESSERA_JWT_KEYS` is unset.
pub fn local_jwt_keys(dir: &Path) -> anyhow::Result<String> {
    local_secret(dir, JWT_KEYS_FILE, || format!("local1:{}", random_secret()))
}

/// The webhook key of this data folder (`<dir>/webhook.key`, made on first use, readable by the
/// owner only), used when `TESSERA_WEBHOOK_KEY` is unset.
pub fn local_webhook_key(dir: &Path) -> anyhow::Result<String> {
    local_secret(dir, WEBHOOK_KEY_FILE, random_secret)
}

/// The secret kept in `<dir>/<file>`, written by `make` (mode 0600) if the file is missing.
fn local_secret(dir: &Path, file: &str, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    let path = dir.join(file);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().to_owned());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let secret = make();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => file
            .write_all(secret.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Ok(std::fs::read_to_string(&path)?.trim().to_owned());
        }
        Err(error) => return Err(error).with_context(|| format!("creating {}", path.display())),
    }
    Ok(secret)
}

/// On the first start over a store, creates the demo user and an API key for it and prints
/// both, once, to stdout (never to the log).
pub async fn ensure_demo_account(auth: &AuthService) -> anyhow::Result<()> {
    if auth.accounts().user_by_email(DEMO_EMAIL).await?.is_some() {
        return Ok(());
    }
    let password = random_secret();
    let (user, _) = match auth.signup(DEMO_EMAIL, &password, "Demo").await {
        Ok(created) => created,
        Err(AuthError::Conflict(_)) => return Ok(()),
        Err(error) => return Err(error).context("creating the demo account"),
    };
    let scopes: Vec<String> = Role::Member.scopes().iter().map(|scope| scope.to_string()).collect();
    let key = auth
        .create_api_key_for(&user, "demo", &scopes)
        .await
        .context("creating the demo API key")?;
    println!(
        "\nDemo account created (shown only this once):\n  email:    {DEMO_EMAIL}\n  password: {password}\n  API key:  {}\n",
        key.key
    );
    Ok(())
}

/// `admin create-admin`: a platform admin with `password`, or a generated one that is printed.
pub async fn create_admin(auth: &AuthService, email: &str, name: &str, password: Option<String>) -> anyhow::Result<()> {
    let generated = password.is_none();
    let password = password.unwrap_or_else(random_secret);
    let (user, _) = auth
        .create_platform_admin(email, &password, name)
        .await
        .context("creating the platform admin")?;
    println!("platform admin {} created ({})", user.email, user.id);
    if generated {
        println!("password (shown only this once): {password}");
    }
    Ok(())
}

/// `admin create-service-key`: a service credential for `/api/internal/*`, printed once.
pub async fn create_service_key(auth: &AuthService, name: &str) -> anyhow::Result<()> {
    let created = auth
        .create_service_key(name)
        .await
        .context("creating the service key")?;
    println!(
        "service key for {} (shown only this once):\n{}",
        created.record.name, created.key
    );
    Ok(())
}
