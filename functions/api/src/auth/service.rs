//! The auth service: sign-up, login with lockout, refresh-token rotation with reuse detection,
//! logout, credential verification, API keys and service keys. Transport-free: the routes and
//! the dev server's admin commands both call it.

use std::collections::BTreeSet;
use std::sync::Arc;

use tessera_core::account::check_password_policy;
use tessera_core::{ApiKeyId, Clock, Email, IdSource, PlanTier, Principal, Role, Scope, TenantId, UserId};
use tessera_store::accounts::{Accounts, ApiKeyRecord, RefreshRecord, ServiceKeyRecord, TenantRecord, UserRecord};
use tessera_store::{Ports, StoreError};

use super::error::AuthError;
use super::jwt::{Claims, JwtKeys};
use super::secrets::{self, Presented};
use crate::rate_limit::{Lockout, RateLimiter};

/// Access tokens live 15 minutes.
pub const ACCESS_TOKEN_SECONDS: i64 = 15 * 60;
/// Refresh tokens (and sessions) live 30 days from their last rotation.
pub const REFRESH_TOKEN_SECONDS: i64 = 30 * 24 * 60 * 60;
/// An API key's last use is recorded at most this often, in seconds.
const TOUCH_EVERY_SECONDS: i64 = 60;
/// The longest name of a user, tenant or key.
const MAX_NAME_CHARS: usize = 100;

/// The auth settings read from configuration.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The JWT keys, issuer and audience.
    pub jwt: JwtKeys,
    /// Whether `X-Forwarded-For` names the client (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
}

impl AuthConfig {
    /// Reads `TESSERA_JWT_KEYS` (`kid:secret[,kid:secret...]`, the first signs; `fallback_keys`
    /// when unset), `TESSERA_JWT_ISSUER` (default `tessera`), `TESSERA_JWT_AUDIENCE` (default
    /// `tessera-api`) and `TESSERA_TRUST_FORWARDED_FOR` (`true`/`false`, default `false`).
    /// A bad value answers the variable's name and why.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        fallback_keys: Option<String>,
    ) -> Result<Self, (&'static str, String)> {
        let read = |variable: &str| lookup(variable).filter(|value| !value.trim().is_empty());
        let issuer = read("TESSERA_JWT_ISSUER").unwrap_or_else(|| "tessera".into());
        let audience = read("TESSERA_JWT_AUDIENCE").unwrap_or_else(|| "tessera-api".into());
        let keys = read("TESSERA_JWT_KEYS").or(fallback_keys).ok_or((
            "TESSERA_JWT_KEYS",
            "not set: give kid:secret (a secret of 32 bytes or more)".to_owned(),
        ))?;
        let jwt = JwtKeys::parse(&keys, &issuer, &audience).map_err(|reason| ("TESSERA_JWT_KEYS", reason))?;
        let trust_forwarded_for = match read("TESSERA_TRUST_FORWARDED_FOR").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(("TESSERA_TRUST_FORWARDED_FOR", "expected 'true' or 'false'".into())),
        };
        Ok(Self {
            jwt,
            trust_forwarded_for,
        })
    }
}

/// Which kind of credential a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// Users: JWT access tokens and user API keys.
    Users,
    /// Services: `tessera_svc_` keys, for `/api/internal/*`.
    Services,
}

/// Tokens answered by login and refresh.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenPair {
    /// The JWT.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires (900).
    pub expires_in: i64,
}

/// A new API key: its record and the full key, shown once.
#[derive(Debug)]
pub struct CreatedKey<R> {
    /// What is stored.
    pub record: R,
    /// The whole key; never stored, never logged.
    pub key: String,
}

/// Everything authentication needs, cheap to clone.
#[derive(Clone)]
pub struct AuthService {
    accounts: Accounts,
    limiter: RateLimiter,
    lockout: Lockout,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    config: Arc<AuthConfig>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl AuthService {
    /// The service over the item store and the rate limits' counters of `ports`.
    pub fn new(ports: &Ports, clock: Arc<dyn Clock>, ids: Arc<dyn IdSource>, config: AuthConfig) -> Self {
        Self {
            accounts: Accounts::new(ports.items.clone()),
            limiter: RateLimiter::new(ports.counters.clone(), clock.clone()),
            lockout: Lockout::new(ports.items.clone(), clock.clone()),
            clock,
            ids,
            config: Arc::new(config),
        }
    }

    /// The accounts repository.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The shared rate limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Creates a user and their personal tenant on the Free plan; they administer it.
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<(UserRecord, TenantRecord), AuthError> {
        self.create_account(email, password, name, Role::Admin).await
    }

    /// Creates a platform operator (`platform_admin`) with a tenant of their own.
    pub async fn create_platform_admin(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<(UserRecord, TenantRecord), AuthError> {
        self.create_account(email, password, name, Role::PlatformAdmin).await
    }

    async fn create_account(
        &self,
        email: &str,
        password: &str,
        name: &str,
        role: Role,
    ) -> Result<(UserRecord, TenantRecord), AuthError> {
        let email = Email::parse(email)?;
        let name = checked_name(name, "name")?;
        check_password_policy(password, &email)?;
        let password_hash = hash_password(password.to_owned()).await?;
        let (user, tenant) = self.personal_account(&name, email.to_string(), role, password_hash);
        match self.accounts.create_account(&tenant, &user).await {
            Err(StoreError::Conflict(_)) => {
                Err(AuthError::Conflict("an account with this e-mail already exists".into()))
            }
            other => other.map_err(AuthError::from),
        }?;
        tracing::info!(user = %user.id, tenant = %tenant.id, role = %role, "account created");
        Ok((user, tenant))
    }

    /// A new user with a personal tenant of the same name on the Free plan (not stored yet).
    fn personal_account(
        &self,
        name: &str,
        email: String,
        role: Role,
        password_hash: String,
    ) -> (UserRecord, TenantRecord) {
        let now = self.now();
        let tenant = TenantRecord {
            id: TenantId::generate(self.ids.as_ref()),
            name: name.to_owned(),
            plan: PlanTier::Free,
            personal: true,
            created_at: now,
        };
        let user = UserRecord {
            id: UserId::generate(self.ids.as_ref()),
            tenant_id: tenant.id.clone(),
            email,
            name: name.to_owned(),
            role,
            password_hash,
            created_at: now,
        };
        (user, tenant)
    }

    /// The user and tenant of a chat user (`telegram:123456789`), created on first sight: a
    /// personal tenant on the Free plan, and a user who cannot log in with a password.
    pub async fn chat_account(&self, user_ref: &str) -> Result<(UserRecord, TenantRecord), AuthError> {
        for _ in 0..2 {
            if let Some(user) = self.accounts.chat_user(user_ref).await? {
                let tenant = self
                    .accounts
                    .tenant(&user.tenant_id)
                    .await?
                    .ok_or_else(|| AuthError::Internal(format!("the tenant of {user_ref} is missing")))?;
                return Ok((user, tenant));
            }
            let (user, tenant) = self.personal_account(user_ref, String::new(), Role::Admin, String::new());
            match self.accounts.create_chat_account(user_ref, &tenant, &user).await {
                Ok(()) => {
                    tracing::info!(user = %user.id, tenant = %tenant.id, "chat account created");
                    return Ok((user, tenant));
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(AuthError::Internal(format!(
            "could not create the account of {user_ref}"
        )))
    }

    /// Checks an e-mail and password; on success opens a session. A wrong e-mail and a wrong
    /// password fail alike, after the same password-hash work.
    pub async fn login(&self, email: &str, password: &str) -> Result<TokenPair, AuthError> {
        let subject = Email::parse(email).map(|email| email.to_string()).unwrap_or_default();
        if let Some(retry_after) = self.lockout.locked_for(&subject).await? {
            return Err(AuthError::Locked { retry_after });
        }
        let user = match subject.is_empty() {
            true => None,
            false => self.accounts.user_by_email(&subject).await?,
        };
        let hash = user.as_ref().map(|user| user.password_hash.clone());
        if !verify_password(password.to_owned(), hash).await? {
            if !subject.is_empty() {
                self.lockout.record_failure(&subject).await?;
            }
            tracing::info!("login refused");
            return Err(AuthError::BadCredentials);
        }
        let user = user.ok_or(AuthError::BadCredentials)?;
        self.lockout.clear(&subject).await?;
        let family = secrets::random_id();
        let (refresh_token, record) = self.new_refresh(&family, &user.id);
        self.accounts.start_session(&record).await?;
        tracing::info!(user = %user.id, "login");
        self.token_pair(&user, &family, refresh_token)
    }

    /// Exchanges a refresh token for a new pair. A token used twice revokes its whole session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let hash = secrets::sha256_hex(refresh_token);
        let now = self.now();
        let used = match self.accounts.refresh_token(&hash).await? {
            Some(token) if token.expires_at > now => token,
            _ => return Err(AuthError::Unauthenticated("invalid refresh token")),
        };
        if used.used {
            return self.reject_reuse(&used).await;
        }
        let user = self
            .accounts
            .user(&used.user_id)
            .await?
            .ok_or(AuthError::Unauthenticated("invalid refresh token"))?;
        let (refresh_token, next) = self.new_refresh(&used.family, &user.id);
        match self.accounts.rotate_refresh(&used, &next).await {
            Ok(()) => self.token_pair(&user, &used.family, refresh_token),
            Err(StoreError::Conflict(_)) => match self.accounts.refresh_token(&hash).await? {
                Some(raced) if raced.used => self.reject_reuse(&raced).await,
                _ => Err(AuthError::Unauthenticated("session revoked")),
            },
            Err(other) => Err(other.into()),
        }
    }

    async fn reject_reuse(&self, token: &RefreshRecord) -> Result<TokenPair, AuthError> {
        self.accounts.revoke_family(&token.family).await?;
        tracing::warn!(user = %token.user_id, "refresh token reused: session revoked");
        Err(AuthError::Unauthenticated(
            "refresh token already used; the session is revoked",
        ))
    }

    /// Ends the session of a signed-in user: its refresh family, and this access token.
    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        let Principal::User {
            jti,
            session,
            expires_at,
            user_id,
            ..
        } = principal
        else {
            return Err(AuthError::Forbidden(
                "logout needs a session (a JWT), not an API key".into(),
            ));
        };
        self.accounts.revoke_family(session).await?;
        self.accounts.revoke_access_token(jti, *expires_at).await?;
        tracing::info!(user = %user_id, "logout");
        Ok(())
    }

    /// Verifies a presented credential of the kind `accepts`.
    pub async fn authenticate(&self, credential: &str, accepts: Accepts) -> Result<Principal, AuthError> {
        match (secrets::classify(credential), accepts) {
            (Presented::Jwt, Accepts::Users) => self.verify_access_token(credential).await,
            (Presented::ApiKey { prefix }, Accepts::Users) => self.verify_api_key(prefix, credential).await,
            (Presented::ServiceKey { prefix }, Accepts::Services) => self.verify_service_key(prefix, credential).await,
            (Presented::ServiceKey { .. }, Accepts::Users) => Err(AuthError::Unauthenticated(
                "service credentials are not accepted on this route",
            )),
            (_, Accepts::Services) => Err(AuthError::Unauthenticated("this route needs a service credential")),
        }
    }

    async fn verify_access_token(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self
            .config
            .jwt
            .verify(token, self.now())
            .map_err(|rejected| AuthError::Unauthenticated(rejected.0))?;
        let malformed = || AuthError::Unauthenticated("invalid token");
        let user_id = UserId::parse(&claims.sub).map_err(|_| malformed())?;
        let tenant_id = TenantId::parse(&claims.tenant).map_err(|_| malformed())?;
        let role = Role::parse(&claims.role).map_err(|_| malformed())?;
        let (revoked, live) = tokio::join!(
            self.accounts.access_token_is_revoked(&claims.jti),
            self.accounts.family_is_live(&claims.sid)
        );
        if revoked? || !live? {
            return Err(AuthError::Unauthenticated("token revoked"));
        }
        Ok(Principal::User {
            user_id,
            tenant_id,
            role,
            jti: claims.jti,
            session: claims.sid,
            expires_at: claims.exp,
        })
    }

    async fn verify_api_key(&self, prefix: &str, key: &str) -> Result<Principal, AuthError> {
        let record = self.accounts.api_key(prefix).await?;
        let Some(record) =
            record.filter(|record| secrets::hashes_match(&record.secret_hash, &secrets::sha256_hex(key)))
        else {
            return Err(AuthError::Unauthenticated("invalid API key"));
        };
        let now = self.now();
        if record.last_used_at.is_none_or(|last| now - last >= TOUCH_EVERY_SECONDS)
            && let Err(error) = self.accounts.touch_api_key(prefix, now, TOUCH_EVERY_SECONDS).await
        {
            tracing::warn!(key = %record.id, %error, "could not record the key's last use");
        }
        Ok(Principal::ApiKey {
            key_id: record.id,
            user_id: record.user_id,
            tenant_id: record.tenant_id,
            role: record.role,
            scopes: record.scopes.into_iter().collect(),
        })
    }

    async fn verify_service_key(&self, prefix: &str, key: &str) -> Result<Principal, AuthError> {
        let record = self.accounts.service_key(prefix).await?;
        match record.filter(|record| secrets::hashes_match(&record.secret_hash, &secrets::sha256_hex(key))) {
            Some(record) => Ok(Principal::Service { name: record.name }),
            None => Err(AuthError::Unauthenticated("invalid service credential")),
        }
    }

    /// Creates an API key for the principal's user, with at most the principal's scopes. A key
    /// may create keys only when it holds the `admin` scope.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        name: &str,
        scopes: &[String],
    ) -> Result<CreatedKey<ApiKeyRecord>, AuthError> {
        let (user_id, tenant_id, role) = manager_of_keys(principal)?;
        self.issue_api_key(user_id, tenant_id, role, &principal.scopes(), name, scopes)
            .await
    }

    /// Creates an API key for `user`, with at most their role's scopes (set-up commands).
    pub async fn create_api_key_for(
        &self,
        user: &UserRecord,
        name: &str,
        scopes: &[String],
    ) -> Result<CreatedKey<ApiKeyRecord>, AuthError> {
        self.issue_api_key(&user.id, &user.tenant_id, user.role, &user.role.scopes(), name, scopes)
            .await
    }

    async fn issue_api_key(
        &self,
        user_id: &UserId,
        tenant_id: &TenantId,
        role: Role,
        held: &BTreeSet<Scope>,
        name: &str,
        scopes: &[String],
    ) -> Result<CreatedKey<ApiKeyRecord>, AuthError> {
        let name = checked_name(name, "name")?;
        if scopes.is_empty() {
            return Err(AuthError::Invalid("scopes: give at least one scope".into()));
        }
        let wanted = scopes
            .iter()
            .map(|scope| Scope::parse(scope).map_err(|error| AuthError::Invalid(format!("scopes: {error}"))))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let beyond: Vec<_> = wanted.difference(held).map(|scope| scope.as_str()).collect();
        if !beyond.is_empty() {
            return Err(AuthError::Forbidden(format!(
                "a key cannot have scopes its creator lacks: {}",
                beyond.join(", ")
            )));
        }
        let new = secrets::new_key(self.ids.as_ref(), false);
        let record = ApiKeyRecord {
            id: ApiKeyId::parse(&format!("{}{}", ApiKeyId::PREFIX, new.prefix))?,
            tenant_id: tenant_id.clone(),
            user_id: user_id.clone(),
            role,
            name,
            scopes: wanted.into_iter().collect(),
            secret_hash: new.hash,
            created_at: self.now(),
            last_used_at: None,
        };
        self.accounts.create_api_key(&record).await?;
        tracing::info!(key = %record.id, user = %user_id, "API key created");
        Ok(CreatedKey { record, key: new.full })
    }

    /// The keys the principal may see: their own, or the whole tenant's for its admins.
    pub async fn list_api_keys(&self, principal: &Principal) -> Result<Vec<ApiKeyRecord>, AuthError> {
        let (user_id, tenant_id, role) = manager_of_keys(principal)?;
        let owner = (!role.manages_tenant()).then_some(user_id);
        Ok(self.accounts.list_api_keys(tenant_id, owner).await?)
    }

    /// Revokes (deletes) a key the principal may see; `NotFound` for any other id.
    pub async fn delete_api_key(&self, principal: &Principal, id: &str) -> Result<(), AuthError> {
        let (user_id, tenant_id, role) = manager_of_keys(principal)?;
        let not_found = || AuthError::NotFound("API key not found".into());
        let id = ApiKeyId::parse(id).map_err(|_| not_found())?;
        let owner = (!role.manages_tenant()).then_some(user_id);
        match self.accounts.delete_api_key(&id, tenant_id, owner).await {
            Err(StoreError::NotFound(_)) => Err(not_found()),
            other => other.map_err(AuthError::from),
        }?;
        tracing::info!(key = %id, user = %user_id, "API key revoked");
        Ok(())
    }

    /// Creates a service credential for `/api/internal/*`.
    pub async fn create_service_key(&self, name: &str) -> Result<CreatedKey<ServiceKeyRecord>, AuthError> {
        let name = checked_name(name, "name")?;
        let new = secrets::new_key(self.ids.as_ref(), true);
        let record = ServiceKeyRecord {
            prefix: new.prefix,
            name,
            secret_hash: new.hash,
            created_at: self.now(),
        };
        self.accounts.create_service_key(&record).await?;
        tracing::info!(service = %record.name, "service key created");
        Ok(CreatedKey { record, key: new.full })
    }

    fn new_refresh(&self, family: &str, user_id: &UserId) -> (String, RefreshRecord) {
        let token = secrets::random_secret();
        let record = RefreshRecord {
            token_hash: secrets::sha256_hex(&token),
            family: family.to_owned(),
            user_id: user_id.clone(),
            used: false,
            expires_at: self.now() + REFRESH_TOKEN_SECONDS,
        };
        (token, record)
    }

    fn token_pair(&self, user: &UserRecord, family: &str, refresh_token: String) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let claims = Claims {
            sub: user.id.to_string(),
            tenant: user.tenant_id.to_string(),
            role: user.role.to_string(),
            jti: secrets::random_id(),
            sid: family.to_owned(),
            iat: now,
            nbf: Some(now),
            exp: now + ACCESS_TOKEN_SECONDS,
            iss: self.config.jwt.issuer().to_owned(),
            aud: self.config.jwt.audience().to_owned(),
        };
        let access_token = self
            .config
            .jwt
            .sign(&claims)
            .map_err(|_| AuthError::Internal("cannot sign the access token".into()))?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            token_type: "bearer",
            expires_in: ACCESS_TOKEN_SECONDS,
        })
    }
}

/// The user, tenant and role that manage keys for this principal: any user, or a key with the
/// `admin` scope.
fn manager_of_keys(principal: &Principal) -> Result<(&UserId, &TenantId, Role), AuthError> {
    match principal {
        Principal::User {
            user_id,
            tenant_id,
            role,
            ..
        } => Ok((user_id, tenant_id, *role)),
        Principal::ApiKey {
            user_id,
            tenant_id,
            role,
            scopes,
            ..
        } if scopes.contains(&Scope::Admin) => Ok((user_id, tenant_id, *role)),
        Principal::ApiKey { .. } => Err(AuthError::Forbidden("managing API keys needs the admin scope".into())),
        Principal::Service { .. } => Err(AuthError::Forbidden("services do not have API keys".into())),
    }
}

fn checked_name(raw: &str, field: &str) -> Result<String, AuthError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AuthError::Invalid(format!(
            "{field}: give 1 to {MAX_NAME_CHARS} characters, no control characters"
        )));
    }
    Ok(name.to_owned())
}

/// Hashes off the async threads: argon2 is deliberately slow.
async fn hash_password(password: String) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|error| AuthError::Internal(error.to_string()))?
        .map_err(AuthError::from)
}

async fn verify_password(password: String, hash: Option<String>) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || secrets::verify_password(&password, hash.as_deref()))
        .await
        .map_err(|error| AuthError::Internal(error.to_string()))
}
