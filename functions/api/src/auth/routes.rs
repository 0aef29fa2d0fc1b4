//! The `auth` family's routes: `/api/auth/*` and `/api/api-keys`.

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
use super::service::{Accepts, AuthService, TokenPair};
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

fn limit(service: &AuthService, rule: Rule, by: LimitBy) -> Limit {
    Limit {
        service: service.clone(),
        rule,
        by,
    }
}

#[derive(Deserialize)]
struct SignupRequest {
    email: String,
    password: String,
    name: String,
}

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

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

async fn login(
    State(service): State<AuthService>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    Ok(Json(service.login(&body.email, &body.password).await?))
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(service): State<AuthService>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    Ok(Json(service.refresh(&body.refresh_token).await?))
}

async fn logout(
    State(service): State<AuthService>,
    Extension(principal): Extension<Principal>,
) -> Result<StatusCode, AuthError> {
    service.logout(&principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

#[derive(Deserialize)]
struct CreateKeyRequest {
    name: String,
    scopes: Vec<String>,
}

/// An API key as listed (never with its secret).
#[derive(Serialize)]
struct KeyView {
    id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created_at: String,
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

async fn list_keys(
    State(service): State<AuthService>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, AuthError> {
    let keys = service.list_api_keys(&principal).await?;
    let items: Vec<KeyView> = keys.iter().map(KeyView::from).collect();
    Ok(Json(json!({ "items": items, "total": items.len() })))
}

async fn delete_key(
    State(service): State<AuthService>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthError> {
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
