//! The shapes of `/api/auth/*` and `/api/api-keys` as the OpenAPI document describes them: the
//! answers exactly as the handlers build them (`null` where a field can be empty, optional where
//! it can be absent). The requests are the handlers' own structs, in [`super::routes`].

use utoipa::ToSchema;

/// A user's role within their tenant.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    /// Uses the tenant's plan.
    Member,
    /// Also manages the tenant.
    Admin,
    /// Operates the platform.
    PlatformAdmin,
}

/// A plan's tier.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanTierName {
    /// The plan every new personal tenant starts on.
    Free,
    /// The paid entry plan.
    Starter,
    /// The professional plan.
    Pro,
}

/// What an API key may do.
#[derive(Debug, ToSchema)]
pub enum ApiKeyScope {
    /// Read jobs and their results.
    #[serde(rename = "jobs:read")]
    JobsRead,
    /// Create and cancel jobs.
    #[serde(rename = "jobs:write")]
    JobsWrite,
    /// Read projects and their resources.
    #[serde(rename = "projects:read")]
    ProjectsRead,
    /// Create, change and delete projects.
    #[serde(rename = "projects:write")]
    ProjectsWrite,
    /// Manage the tenant's keys (and, for a platform admin, the platform).
    #[serde(rename = "admin")]
    Admin,
}

/// The type of the access token: always `bearer`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// `Authorization: Bearer <access_token>`.
    Bearer,
}

/// The tokens of a session, answered by login, refresh and sign-up.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c3JfYTFiMmMzZDRlNWY2In0.c2lnbmF0dXJl",
    "refresh_token": "Zk3Q9pL2vX8mN4rT6yW1sA5dF7gH0jK2",
    "token_type": "bearer",
    "expires_in": 900
}))]
pub struct TokenPair {
    /// The access token (a JWT), for `Authorization: Bearer`; it lives 15 minutes.
    pub access_token: String,
    /// The opaque refresh token for `/api/auth/refresh`; single use, it lives 30 days.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: TokenType,
    /// Seconds until the access token expires (900).
    pub expires_in: i64,
}

/// The signed-in user.
#[derive(Debug, ToSchema)]
pub struct AccountUser {
    /// The user's id (`usr_...`).
    #[schema(example = "usr_a1b2c3d4e5f6")]
    pub id: String,
    /// The user's e-mail, normalised to lowercase.
    #[schema(example = "you@acme.com")]
    pub email: String,
    /// The user's name.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// The user's role in the tenant.
    pub role: AccountRole,
    /// The user's tenant (`ten_...`).
    #[schema(example = "ten_a1b2c3d4e5f6")]
    pub tenant_id: String,
    /// When the user signed up (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2025-12-17T20:00:00Z")]
    pub created_at: String,
}

/// The user's tenant: the organisation that holds the plan.
#[derive(Debug, ToSchema)]
pub struct AccountTenant {
    /// The tenant's id (`ten_...`).
    #[schema(example = "ten_a1b2c3d4e5f6")]
    pub id: String,
    /// The tenant's name.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// The tenant's plan.
    pub plan: PlanTierName,
    /// Whether it is the personal tenant made at sign-up.
    pub personal: bool,
    /// When it was made (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2025-12-17T20:00:00Z")]
    pub created_at: String,
}

/// A plan as the spec shows it.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"name": "Free", "tier": "free", "daily_token_limit": 10, "priority": 0}))]
pub struct AccountPlan {
    /// Display name.
    pub name: String,
    /// The tier.
    pub tier: PlanTierName,
    /// Tokens per UTC day.
    pub daily_token_limit: u64,
    /// Queue priority, 0 (lowest) to 2.
    #[schema(minimum = 0, maximum = 2)]
    pub priority: u8,
}

/// The API key a request was made with.
#[derive(Debug, ToSchema)]
pub struct CurrentApiKey {
    /// The key's id (`key_...`).
    #[schema(example = "key_a1b2c3d4e5f6")]
    pub id: String,
    /// What the key may do.
    pub scopes: Vec<ApiKeyScope>,
}

/// 200 of `GET /api/auth/me`: the account the credential acts for.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "user": {
        "id": "usr_a1b2c3d4e5f6",
        "email": "you@acme.com",
        "name": "Ada Lovelace",
        "role": "admin",
        "tenant_id": "ten_a1b2c3d4e5f6",
        "created_at": "2025-12-17T20:00:00Z"
    },
    "tenant": {
        "id": "ten_a1b2c3d4e5f6",
        "name": "Ada Lovelace",
        "plan": "free",
        "personal": true,
        "created_at": "2025-12-17T20:00:00Z"
    },
    "plan": {"name": "Free", "tier": "free", "daily_token_limit": 10, "priority": 0},
    "api_key": {"id": "key_a1b2c3d4e5f6", "scopes": ["jobs:read", "jobs:write"]}
}))]
pub struct AccountView {
    /// The user.
    pub user: AccountUser,
    /// The user's tenant.
    pub tenant: AccountTenant,
    /// The tenant's plan.
    pub plan: AccountPlan,
    /// The API key used, when the credential is an API key (absent for an access token).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub api_key: Option<CurrentApiKey>,
}

/// 201 of `POST /api/auth/signup`: the new account, signed in.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "user": {
        "id": "usr_a1b2c3d4e5f6",
        "email": "you@acme.com",
        "name": "Ada Lovelace",
        "role": "admin",
        "tenant_id": "ten_a1b2c3d4e5f6",
        "created_at": "2025-12-17T20:00:00Z"
    },
    "tenant": {
        "id": "ten_a1b2c3d4e5f6",
        "name": "Ada Lovelace",
        "plan": "free",
        "personal": true,
        "created_at": "2025-12-17T20:00:00Z"
    },
    "plan": {"name": "Free", "tier": "free", "daily_token_limit": 10, "priority": 0},
    "tokens": {
        "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c3JfYTFiMmMzZDRlNWY2In0.c2lnbmF0dXJl",
        "refresh_token": "Zk3Q9pL2vX8mN4rT6yW1sA5dF7gH0jK2",
        "token_type": "bearer",
        "expires_in": 900
    }
}))]
pub struct SignedUp {
    /// The new user, admin of their personal tenant.
    pub user: AccountUser,
    /// The new personal tenant, on the Free plan.
    pub tenant: AccountTenant,
    /// The tenant's plan.
    pub plan: AccountPlan,
    /// A session, as `/api/auth/login` would answer.
    pub tokens: TokenPair,
}

/// 201 of `POST /api/api-keys`: the key as listed, plus the whole key, shown this once.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "id": "key_a1b2c3d4e5f6",
    "name": "ci-pipeline",
    "prefix": "a1b2c3d4e5f6",
    "scopes": ["jobs:read", "jobs:write"],
    "created_at": "2025-12-17T20:00:00Z",
    "last_used_at": null,
    "key": "tessera_a1b2c3d4e5f6_Zk3Q9pL2vX8mN4rT6yW1sA5dF7gH0jK2"
}))]
pub struct ApiKeyCreated {
    /// The key's id (`key_` and its prefix).
    pub id: String,
    /// The name given at creation.
    pub name: String,
    /// The public prefix, the part of the key after `tessera_`.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Vec<ApiKeyScope>,
    /// When it was made (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it was last used (always null for a new key).
    #[schema(required = true, format = DateTime)]
    pub last_used_at: Option<String>,
    /// The whole key, `tessera_<prefix>_<secret>`: shown once, never stored.
    pub key: String,
}

/// 200 of `GET /api/api-keys`: the keys the caller may see (their own, or the whole tenant's
/// for its admins), never with their secret.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "key_a1b2c3d4e5f6",
        "name": "ci-pipeline",
        "prefix": "a1b2c3d4e5f6",
        "scopes": ["jobs:read", "jobs:write"],
        "created_at": "2025-12-17T20:00:00Z",
        "last_used_at": "2025-12-18T08:30:00Z"
    }],
    "total": 1
}))]
pub struct ApiKeyList {
    /// The keys.
    pub items: Vec<super::routes::KeyView>,
    /// How many there are.
    pub total: u64,
}
