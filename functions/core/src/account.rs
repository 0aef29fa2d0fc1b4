//! The account model: tenants (the organisation that holds a plan), users with a role, the scopes
//! an API key can hold, the plans, and the principal every authenticated request acts as.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::{ApiKeyId, TenantId, UserId};

/// A user's role within their tenant; `platform_admin` operates the whole platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Uses the tenant's plan: creates jobs, projects and keys of their own.
    Member,
    /// Also manages the tenant: its keys, users and settings.
    Admin,
    /// Operates the platform: every `/admin/*` route.
    PlatformAdmin,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::PlatformAdmin => "platform_admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "member" => Ok(Self::Member),
            "admin" => Ok(Self::Admin),
            "platform_admin" => Ok(Self::PlatformAdmin),
            _ => Err(DomainError::InvalidInput(format!("unknown role '{raw}'"))),
        }
    }

    /// Whether this role manages its tenant (sees every key of it, not only its own).
    pub fn manages_tenant(self) -> bool {
        matches!(self, Self::Admin | Self::PlatformAdmin)
    }

    /// The scopes a user with this role holds; an API key can never hold more than its creator.
    pub fn scopes(self) -> BTreeSet<Scope> {
        match self {
            Self::Member => Scope::ALL
                .iter()
                .copied()
                .filter(|scope| *scope != Scope::Admin)
                .collect(),
            Self::Admin | Self::PlatformAdmin => Scope::ALL.iter().copied().collect(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
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
    /// Manage the tenant (and, for a platform admin, the platform).
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Self::JobsRead,
        Self::JobsWrite,
        Self::ProjectsRead,
        Self::ProjectsWrite,
        Self::Admin,
    ];

    /// The scope's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobsRead => "jobs:read",
            Self::JobsWrite => "jobs:write",
            Self::ProjectsRead => "projects:read",
            Self::ProjectsWrite => "projects:write",
            Self::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|scope| scope.as_str()).collect();
                DomainError::InvalidInput(format!("unknown scope '{raw}'; known scopes: {}", known.join(", ")))
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan's tier, as the spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanTier {
    /// The plan every new personal tenant starts on.
    Free,
    /// The paid entry plan.
    Starter,
    /// The professional plan.
    Pro,
}

impl PlanTier {
    /// The tier's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Starter => "starter",
            Self::Pro => "pro",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "free" => Ok(Self::Free),
            "starter" => Ok(Self::Starter),
            "pro" => Ok(Self::Pro),
            _ => Err(DomainError::InvalidInput(format!("unknown plan '{raw}'"))),
        }
    }
}

/// A normalised e-mail address: trimmed, lowercase, `local@domain` with a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// The longest address accepted (RFC 5321's path limit).
    pub const MAX_LEN: usize = 254;

    /// Parses and normalises an address given by a client.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let email = raw.trim().to_lowercase();
        let invalid = || DomainError::InvalidInput("email is not a valid e-mail address".into());
        if email.len() > Self::MAX_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && domain.split('.').all(|label| !label.is_empty() && label.len() <= 63);
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The password policy: 10 to 128 characters, not only one repeated character, not containing
/// the e-mail's local part, and not one of the most common passwords. Length beats composition
/// rules (NIST SP 800-63B), so there is no "one digit, one symbol" rule.
pub fn check_password_policy(password: &str, email: &Email) -> Result<(), DomainError> {
    const COMMON: [&str; 8] = [
        "password", "123456", "qwerty", "letmein", "welcome", "iloveyou", "admin", "tessera",
    ];
    let refuse = |why: &str| Err(DomainError::InvalidInput(format!("password {why}")));
    let length = password.chars().count();
    if length < 10 {
        return refuse("must be at least 10 characters long");
    }
    if length > 128 {
        return refuse("must be at most 128 characters long");
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return refuse("must not repeat a single character");
    }
    let lowered = password.to_lowercase();
    let local = email.as_str().split('@').next().unwrap_or_default();
    if local.len() >= 3 && lowered.contains(local) {
        return refuse("must not contain your e-mail address");
    }
    if COMMON
        .iter()
        .any(|common| lowered.trim_end_matches(|c: char| c.is_ascii_digit()) == *common)
    {
        return refuse("is too common");
    }
    Ok(())
}

/// Who a request acts as, once its credential is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user (a JWT access token).
    User {
        /// The user.
        user_id: UserId,
        /// Their tenant.
        tenant_id: TenantId,
        /// Their role.
        role: Role,
        /// The access token's id, revoked on logout.
        jti: String,
        /// The refresh family (session) the token was issued in.
        session: String,
        /// When the access token expires (unix seconds).
        expires_at: i64,
    },
    /// An API key, acting for the user who created it, within its scopes.
    ApiKey {
        /// The key.
        key_id: ApiKeyId,
        /// The user who created it.
        user_id: UserId,
        /// The tenant it belongs to.
        tenant_id: TenantId,
        /// The creator's role when the key was made.
        role: Role,
        /// What the key may do.
        scopes: BTreeSet<Scope>,
    },
    /// A service credential (`tessera_svc_...`), only for `/api/internal/*`.
    Service {
        /// The service's name, e.g. `gpu-worker`.
        name: String,
    },
}

impl Principal {
    /// The tenant the principal acts within (`None` for a service).
    pub fn tenant_id(&self) -> Option<&TenantId> {
        match self {
            Self::User { tenant_id, .. } | Self::ApiKey { tenant_id, .. } => Some(tenant_id),
            Self::Service { .. } => None,
        }
    }

    /// The user the principal acts for (`None` for a service).
    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            Self::User { user_id, .. } | Self::ApiKey { user_id, .. } => Some(user_id),
            Self::Service { .. } => None,
        }
    }

    /// The role of the user behind the principal (`None` for a service).
    pub fn role(&self) -> Option<Role> {
        match self {
            Self::User { role, .. } | Self::ApiKey { role, .. } => Some(*role),
            Self::Service { .. } => None,
        }
    }

    /// What the principal may do: a user's role scopes, or a key's own.
    pub fn scopes(&self) -> BTreeSet<Scope> {
        match self {
            Self::User { role, .. } => role.scopes(),
            Self::ApiKey { scopes, .. } => scopes.clone(),
            Self::Service { .. } => BTreeSet::new(),
        }
    }

    /// Whether the principal holds `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes().contains(&scope)
    }

    /// A stable name for per-credential rate limits: the user for a JWT (tokens rotate every
    /// 15 minutes), the key for an API key, the service's name.
    pub fn rate_subject(&self) -> String {
        match self {
            Self::User { user_id, .. } => user_id.to_string(),
            Self::ApiKey { key_id, .. } => key_id.to_string(),
            Self::Service { name } => format!("svc:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("Ana.Silva@Example.com ").expect("email")
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email().as_str(), "ana.silva@example.com");
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "ana@localhost",
            "ana@ex..com",
            "a b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_password_policy_wants_length_not_tricks() {
        assert!(check_password_policy("correct horse battery", &email()).is_ok());
        for (bad, why) in [
            ("short1!", "at least 10"),
            ("aaaaaaaaaaaa", "single character"),
            ("xxana.silvaxx", "e-mail"),
            ("password123", "too common"),
        ] {
            let error = check_password_policy(bad, &email()).expect_err(bad).to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(check_password_policy(&"ab".repeat(65), &email()).is_err());
    }

    #[test]
    fn scopes_and_roles_round_trip_their_wire_names() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
            assert_eq!(serde_json::to_value(scope).expect("json"), scope.as_str());
        }
        assert!(Scope::parse("jobs:delete").is_err());
        for role in [Role::Member, Role::Admin, Role::PlatformAdmin] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
    }

    #[test]
    fn a_member_holds_every_scope_but_admin() {
        let scopes = Role::Member.scopes();
        assert!(scopes.contains(&Scope::JobsWrite) && !scopes.contains(&Scope::Admin));
        assert!(Role::Admin.scopes().contains(&Scope::Admin));
    }
}
