//! The `auth` family's routes: `/api/auth/*` and `/api/api-keys`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_core::Principal;
use tessera_store::accounts::{ApiKeyRecord, TenantRecord, UserRecord};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::AuthError;
use super::layer::{Guard, Limit, LimitBy, authenticate, platform_style, rate_limit};
use super::schemas;
use super::service::{Accepts, AuthService, TokenPair};
use crate::openapi::Problem;
use crate::problem::JsonBody;
use crate::rate_limit::Rule;

/// Every route of the family, with its auth and rate limits.
pub fn router(service: AuthService) -> Router {
    let by_ip = |rule| from_fn_with_state(limit(&service, rule, LimitBy::Ip), rate_limit);
    let by_principal = |rule| from_fn_with_state(limit(&service, rule, LimitBy::Principal), rate_limit);
    let guard = Guard {
        service: service.clone(),
        accepts: Accepts::Users,
        render: platform_style,
    };
    let public = Router::new()
        .route("/api/auth/signup", post(signup).layer(by_ip(Rule::SIGNUP_PER_IP)))
        .route("/api/auth/login", post(login).layer(by_ip(Rule::LOGIN_PER_IP)))
        .route("/api/auth/refresh", post(refresh).layer(by_ip(Rule::REFRESH_PER_IP)));
    let signed_in = Router::new()
        .route("/api/auth/me", get(me).layer(by_principal(Rule::ME)))
        .route("/api/auth/logout", post(logout))
        .route(
            "/api/api-keys",
            post(create_key).get(list_keys).layer(by_principal(Rule::PLATFORM)),
        )
        .route(
            "/api/api-keys/{id}",
            delete(delete_key).layer(by_principal(Rule::PLATFORM)),
        )
        .layer(from_fn_with_state(guard, authenticate));
    public.merge(signed_in).with_state(service)
}

/// The auth family's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(signup, login, refresh, me, logout, create_key, list_keys, delete_key),
    components(schemas(
        SignupRequest,
        LoginRequest,
        RefreshRequest,
        CreateKeyRequest,
        KeyView,
        schemas::AccountRole,
        schemas::PlanTierName,
        schemas::ApiKeyScope,
        schemas::TokenType,
        schemas::TokenPair,
        schemas::AccountUser,
        schemas::AccountTenant,
        schemas::AccountPlan,
        schemas::CurrentApiKey,
        schemas::AccountView,
        schemas::SignedUp,
        schemas::ApiKeyCreated,
        schemas::ApiKeyList,
    ))
)]
pub struct AuthApi;

fn limit(service: &AuthService, rule: Rule, by: LimitBy) -> Limit {
    Limit {
        service: service.clone(),
        rule,
        by,
    }
}

/// `POST /api/auth/signup`: a new user with a personal tenant on the Free plan.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "you@acme.com", "password": "correct-horse-battery", "name": "Ada Lovelace"}))]
struct SignupRequest {
    /// The e-mail address to log in with (`local@domain.tld`; stored in lowercase).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 10 to 128 characters: not one character repeated, not containing the e-mail's local part,
    /// not a common password.
    #[schema(min_length = 10, max_length = 128)]
    password: String,
    /// The user's name, also the personal tenant's: 1 to 100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// A new account, signed in.
///
/// Creates a user and their personal tenant on the Free plan (they administer it), then opens a
/// session as `/api/auth/login` does. Limited to 10 sign-ups per hour per IP.
#[utoipa::path(
    post,
    path = "/api/auth/signup",
    tag = "auth",
    operation_id = "auth_signup",
    request_body = SignupRequest,
    security(()),
    responses(
        (status = 201, description = "The account was created and signed in.", body = schemas::SignedUp,
            headers(
                ("X-RateLimit-Limit" = u32, description = "Sign-ups allowed per window."),
                ("X-RateLimit-Remaining" = u32, description = "Sign-ups left in this window."),
                ("X-RateLimit-Reset" = i64, description = "When the window ends, unix seconds."),
            )),
        (status = 400, description = "Invalid e-mail, name or password (the detail says which and why), or malformed JSON.",
            body = Problem, example = json!({"detail": "password must be at least 10 characters long"})),
        (status = 409, description = "An account with this e-mail already exists.", body = Problem,
            example = json!({"detail": "an account with this e-mail already exists"})),
        (status = 413, description = "The body is over 2 MiB.", body = Problem),
        (status = 415, description = "The body is not `Content-Type: application/json`.", body = Problem),
        (status = 422, description = "A field is missing or of the wrong type.", body = Problem),
        (status = 429, description = "Too many sign-ups from this IP (or too many failed logins for this e-mail).",
            body = Problem, headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The account store did not answer; retry later.", body = Problem),
    )
)]
async fn signup(
    State(service): State<AuthService>,
    JsonBody(body): JsonBody<SignupRequest>,
) -> Result<(StatusCode, Json<Value>), AuthError> {
    let (user, tenant) = service.signup(&body.email, &body.password, &body.name).await?;
    let tokens = service.login(&body.email, &body.password).await?;
    let mut answer = account_view(&user, &tenant);
    answer["tokens"] = json!(tokens);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /api/auth/login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "you@acme.com", "password": "correct-horse-battery"}))]
struct LoginRequest {
    /// The account's e-mail address.
    email: String,
    /// The account's password.
    password: String,
}

/// A session for an e-mail and password.
///
/// A wrong e-mail and a wrong password answer alike. Limited to 5 per 15 minutes per IP; after 5
/// failures in a row an e-mail is locked for 15 minutes.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    operation_id = "auth_login",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, description = "Signed in.", body = schemas::TokenPair,
            headers(
                ("X-RateLimit-Limit" = u32, description = "Logins allowed per window."),
                ("X-RateLimit-Remaining" = u32, description = "Logins left in this window."),
                ("X-RateLimit-Reset" = i64, description = "When the window ends, unix seconds."),
            )),
        (status = 400, description = "Malformed JSON.", body = Problem),
        (status = 401, description = "Wrong e-mail or password.", body = Problem,
            headers(("WWW-Authenticate" = String, description = "`Bearer`.")),
            example = json!({"detail": "invalid email or password"})),
        (status = 413, description = "The body is over 2 MiB.", body = Problem),
        (status = 415, description = "The body is not `Content-Type: application/json`.", body = Problem),
        (status = 422, description = "A field is missing or of the wrong type.", body = Problem),
        (status = 429, description = "Too many logins from this IP, or the e-mail is locked after failed logins.",
            body = Problem, headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The account store did not answer; retry later.", body = Problem),
    )
)]
async fn login(
    State(service): State<AuthService>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    Ok(Json(service.login(&body.email, &body.password).await?))
}

/// `POST /api/auth/refresh`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"refresh_token": "Zk3Q9pL2vX8mN4rT6yW1sA5dF7gH0jK2"}))]
struct RefreshRequest {
    /// The refresh token of the latest pair (each is single use).
    refresh_token: String,
}

/// A new token pair for a refresh token.
///
/// The refresh token is rotated: a token used twice revokes its whole session. Limited to 30 per
/// minute per IP.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    operation_id = "auth_refresh",
    request_body = RefreshRequest,
    security(()),
    responses(
        (status = 200, description = "The new pair; the old refresh token is spent.", body = schemas::TokenPair,
            headers(
                ("X-RateLimit-Limit" = u32, description = "Refreshes allowed per window."),
                ("X-RateLimit-Remaining" = u32, description = "Refreshes left in this window."),
                ("X-RateLimit-Reset" = i64, description = "When the window ends, unix seconds."),
            )),
        (status = 400, description = "Malformed JSON.", body = Problem),
        (status = 401, description = "Unknown, expired or revoked refresh token (a reused one also revokes its session).",
            body = Problem,
            headers(("WWW-Authenticate" = String, description = "`Bearer`.")),
            example = json!({"detail": "invalid refresh token"})),
        (status = 413, description = "The body is over 2 MiB.", body = Problem),
        (status = 415, description = "The body is not `Content-Type: application/json`.", body = Problem),
        (status = 422, description = "A field is missing or of the wrong type.", body = Problem),
        (status = 429, description = "Too many refreshes from this IP.", body = Problem,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The account store did not answer; retry later.", body = Problem),
    )
)]
async fn refresh(
    State(service): State<AuthService>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    Ok(Json(service.refresh(&body.refresh_token).await?))
}

/// Ends the session.
///
/// Revokes the session's refresh tokens and this access token. Needs an access token: an API key
/// has no session (revoke it with `DELETE /api/api-keys/{id}`).
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    operation_id = "auth_logout",
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 204, description = "Signed out."),
        (status = 401, description = "No credential, or one that does not verify.", body = Problem,
            headers(("WWW-Authenticate" = String, description = "`Bearer`.")),
            example = json!({"detail": "token revoked"})),
        (status = 403, description = "The credential is an API key, which has no session.", body = Problem,
            example = json!({"detail": "logout needs a session (a JWT), not an API key"})),
        (status = 503, description = "The account store did not answer; retry later.", body = Problem),
    )
)]
async fn logout(
    State(service): State<AuthService>,
    Extension(principal): Extension<Principal>,
) -> Result<StatusCode, AuthError> {
    service.logout(&principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
///
/// The user, their tenant and its plan; with an API key, also the key's id and scopes. Limited
/// to 60 per minute per credential.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    operation_id = "auth_me",
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "The account.", body = schemas::AccountView,
            headers(
                ("X-RateLimit-Limit" = u32, description = "Requests allowed per window."),
                ("X-RateLimit-Remaining" = u32, description = "Requests left in this window."),
                ("X-RateLimit-Reset" = i64, description = "When the window ends, unix seconds."),
            )),
        (status = 401, description = "No credential, one that does not verify, or an account that no longer exists.",
            body = Problem,
            headers(("WWW-Authenticate" = String, description = "`Bearer`.")),
            example = json!({"detail": "missing credential: send Authorization: Bearer <token or API key>"})),
        (status = 429, description = "Over 60 requests per minute.", body = Problem,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The account store did not answer; retry later.", body = Problem),
    )
)]
async fn me(
    State(service): State<AuthService>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, AuthError> {
    let gone = || AuthError::Unauthenticated("the account no longer exists");
    let user_id = principal.user_id().ok_or_else(gone)?;
    let user = service.accounts().user(user_id).await?.ok_or_else(gone)?;
    let tenant = service.accounts().tenant(&user.tenant_id).await?.ok_or_else(gone)?;
    let mut answer = account_view(&user, &tenant);
    if let Principal::ApiKey { key_id, scopes, .. } = &principal {
        answer["api_key"] = json!({ "id": key_id, "scopes": scopes });
    }
    Ok(Json(answer))
}

/// `{user, tenant, plan}` as `/auth/me` and sign-up answer it.
fn account_view(user: &UserRecord, tenant: &TenantRecord) -> Value {
    json!({
        "user": {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "role": user.role,
            "tenant_id": user.tenant_id,
            "created_at": timestamp(user.created_at),
        },
        "tenant": {
            "id": tenant.id,
            "name": tenant.name,
            "plan": tenant.plan,
            "personal": tenant.personal,
            "created_at": timestamp(tenant.created_at),
        },
        "plan": plan_view(tenant.plan),
    })
}

/// A plan as the spec shows it: `{name, tier, daily_token_limit, priority}`.
pub fn plan_view(tier: tessera_core::PlanTier) -> Value {
    let plan = tessera_core::Catalog::active().plan(tier);
    json!({
        "name": plan.name,
        "tier": plan.tier,
        "daily_token_limit": plan.daily_token_limit,
        "priority": plan.priority,
    })
}

/// `POST /api/api-keys`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "ci-pipeline", "scopes": ["jobs:read", "jobs:write"]}))]
struct CreateKeyRequest {
    /// A name to recognise the key by: 1 to 100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// What the key may do: at least one scope, none beyond the creator's.
    #[schema(value_type = Vec<schemas::ApiKeyScope>, min_items = 1)]
    scopes: Vec<String>,
}

/// An API key as listed (never with its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ApiKey, example = json!({
    "id": "key_a1b2c3d4e5f6",
    "name": "ci-pipeline",
    "prefix": "a1b2c3d4e5f6",
    "scopes": ["jobs:read", "jobs:write"],
    "created_at": "2025-12-17T20:00:00Z",
    "last_used_at": "2025-12-18T08:30:00Z"
}))]
pub struct KeyView {
    /// The key's id (`key_` and its prefix).
    id: String,
    /// The name given at creation.
    name: String,
    /// The public prefix, the part of the key after `tessera_`.
    prefix: String,
    /// What the key may do.
    #[schema(value_type = Vec<schemas::ApiKeyScope>)]
    scopes: Vec<String>,
    /// When it was made (RFC 3339, UTC).
    #[schema(format = DateTime)]
    created_at: String,
    /// When it was last used (to the minute), or null if never.
    #[schema(required = true, format = DateTime)]
    last_used_at: Option<String>,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(key: &ApiKeyRecord) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name.clone(),
            prefix: key.prefix().to_owned(),
            scopes: key.scopes.iter().map(|scope| scope.as_str().to_owned()).collect(),
            created_at: timestamp(key.created_at),
            last_used_at: key.last_used_at.map(timestamp),
        }
    }
}

/// A new API key.
///
/// The whole key is in the answer only: store it then. A key can hold no scope its creator lacks;
/// an API key may create keys only with the `admin` scope. Limited to 60 per minute per
/// credential (with the other key routes).
#[utoipa::path(
    post,
    path = "/api/api-keys",
    tag = "api-keys",
    operation_id = "api_keys_create",
    request_body = CreateKeyRequest,
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 201, description = "The key, with its secret shown this once.", body = schemas::ApiKeyCreated,
            headers(
                ("X-RateLimit-Limit" = u32, description = "Requests allowed per window."),
                ("X-RateLimit-Remaining" = u32, description = "Requests left in this window."),
                ("X-RateLimit-Reset" = i64, description = "When the window ends, unix seconds."),
            )),
        (status = 400, description = "Invalid name, no scope or an unknown one, or malformed JSON.", body = Problem,
            example = json!({"detail": "scopes: give at least one scope"})),
        (status = 401, description = "No credential, or one that does not verify.", body = Problem,
            headers(("WWW-Authenticate" = String, description = "`Bearer`."))),
        (status = 403, description = "A scope beyond the creator's, or an API key without the `admin` scope.",
            body = Problem, example = json!({"detail": "managing API keys needs the admin scope"})),
        (status = 413, description = "The body is over 2 MiB.", body = Problem),
        (status = 415, description = "The body is not `Content-Type: application/json`.", body = Problem),
        (status = 422, description = "A field is missing or of the wrong type.", body = Problem),
        (status = 429, description = "Over 60 requests per minute.", body = Problem,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The account store did not answer; retry later.", body = Problem),
    )
)]
async fn create_key(
    State(service): State<AuthService>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<CreateKeyRequest>,
) -> Result<(StatusCode, Json<Value>), AuthError> {
    let created = service.create_api_key(&principal, &body.name, &body.scopes).await?;
    let mut answer = json!(KeyView::from(&created.record));
    answer["key"] = json!(created.key);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// The API keys the caller may see.
///
/// Their own keys, or every key of the tenant for its admins; never with their secret.
#[utoipa::path(
    get,
    path = "/api/api-keys",
    tag = "api-keys",
    operation_id = "api_keys_list",
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "The keys.", body = schemas::ApiKeyList,
            headers(
                ("X-RateLimit-Limit" = u32, description = "Requests allowed per window."),
                ("X-RateLimit-Remaining" = u32, description = "Requests left in this window."),
                ("X-RateLimit-Reset" = i64, description = "When the window ends, unix seconds."),
            )),
        (status = 401, description = "No credential, or one that does not verify.", body = Problem,
            headers(("WWW-Authenticate" = String, description = "`Bearer`."))),
        (status = 403, description = "An API key without the `admin` scope.", body = Problem,
            example = json!({"detail": "managing API keys needs the admin scope"})),
        (status = 429, description = "Over 60 requests per minute.", body = Problem,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The account store did not answer; retry later.", body = Problem),
    )
)]
async fn list_keys(
    State(service): State<AuthService>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, AuthError> {
    let keys = service.list_api_keys(&principal).await?;
    let items: Vec<KeyView> = keys.iter().map(KeyView::from).collect();
    Ok(Json(json!({ "items": items, "total": items.len() })))
}

/// Revokes an API key.
///
/// The key stops working at once. A key the caller may not see answers 404, as a missing one.
#[utoipa::path(
    delete,
    path = "/api/api-keys/{id}",
    tag = "api-keys",
    operation_id = "api_keys_delete",
    params(("id" = String, Path, description = "The key's id (`key_` and its prefix).", example = "key_a1b2c3d4e5f6")),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 204, description = "Revoked.",
            headers(
                ("X-RateLimit-Limit" = u32, description = "Requests allowed per window."),
                ("X-RateLimit-Remaining" = u32, description = "Requests left in this window."),
                ("X-RateLimit-Reset" = i64, description = "When the window ends, unix seconds."),
            )),
        (status = 401, description = "No credential, or one that does not verify.", body = Problem,
            headers(("WWW-Authenticate" = String, description = "`Bearer`."))),
        (status = 403, description = "An API key without the `admin` scope.", body = Problem,
            example = json!({"detail": "managing API keys needs the admin scope"})),
        (status = 404, description = "No such key among those the caller may see.", body = Problem,
            example = json!({"detail": "API key not found"})),
        (status = 429, description = "Over 60 requests per minute.", body = Problem,
            headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The account store did not answer; retry later.", body = Problem),
    )
)]
async fn delete_key(
    State(service): State<AuthService>,
    Extension(principal): Extension<Principal>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AuthError> {
    // A path that does not decode (not UTF-8) names no key: 404 like any other unknown id.
    let id = id.map(|Path(id)| id).unwrap_or_default();
    service.delete_api_key(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// RFC 3339 in UTC, as the spec writes times.
pub fn timestamp(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_default()
}
