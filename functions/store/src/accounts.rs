//! The accounts repository: tenants, users, API keys, service keys, refresh-token families and
//! revoked access tokens, laid out in the `accounts` table. Secrets arrive here already hashed.
//!
//! | item | pk | sk | index |
//! | --- | --- | --- | --- |
//! | tenant | `TENANT#<id>` | `TENANT` | |
//! | user | `USER#<id>` | `USER` | gsi1: `TENANT#<id>#USERS` |
//! | e-mail claim (uniqueness) | `EMAIL#<email>` | `EMAIL` | |
//! | chat user claim | `USERREF#<platform>:<id>` | `USERREF` | |
//! | API key | `APIKEY#<prefix>` | `APIKEY` | gsi1: `TENANT#<id>#APIKEYS` |
//! | service key | `SVCKEY#<prefix>` | `SVCKEY` | |
//! | refresh token | `REFRESH#<sha256>` | `REFRESH` | (ttl) |
//! | refresh family (session) | `FAMILY#<id>` | `FAMILY` | (ttl) |
//! | revoked access token | `JTI#<jti>` | `REVOKED` | (ttl) |
//! | one-time setup marker | `SETUP#<name>` | `SETUP` | |

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_core::{ApiKeyId, PlanTier, Role, Scope, TenantId, UserId};

use crate::definitions::accounts_table;
use crate::item::{Cmp, Condition, Item, ItemStore, Key, Query, TableDef, Update, Write};
use crate::{StoreError, StoreResult};

/// A tenant: the organisation that holds a plan and a token quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// The tenant's id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// The plan it is on.
    pub plan: PlanTier,
    /// Whether it was made for one person at sign-up (or first contact with a bot).
    pub personal: bool,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

/// A user of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's id.
    pub id: UserId,
    /// The tenant they belong to.
    pub tenant_id: TenantId,
    /// Normalised e-mail address, unique across the platform.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role within the tenant.
    pub role: Role,
    /// The argon2id PHC string of their password.
    pub password_hash: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

/// An API key. Only the SHA-256 of the full key is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// `key_<prefix>`.
    pub id: ApiKeyId,
    /// The tenant the key acts in.
    pub tenant_id: TenantId,
    /// The user who created it.
    pub user_id: UserId,
    /// The creator's role when the key was made.
    pub role: Role,
    /// Name given at creation.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the whole key.
    pub secret_hash: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last time it authenticated a request (updated at most once a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
}

impl ApiKeyRecord {
    /// The public prefix: the id without `key_`.
    pub fn prefix(&self) -> &str {
        &self.id.as_str()[ApiKeyId::PREFIX.len()..]
    }
}

/// A service credential for `/api/internal/*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceKeyRecord {
    /// The key's public prefix.
    pub prefix: String,
    /// The service's name, e.g. `gpu-worker`.
    pub name: String,
    /// Hex SHA-256 of the whole key.
    pub secret_hash: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

/// One refresh token of a session (family); only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// The session it belongs to.
    pub family: String,
    /// Whose session.
    pub user_id: UserId,
    /// Whether it has been exchanged already (a second use revokes the family).
    pub used: bool,
    /// Expiry, unix seconds.
    pub expires_at: i64,
}

/// Reads and writes the account items.
#[derive(Clone)]
pub struct Accounts {
    items: Arc<dyn ItemStore>,
    table: TableDef,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// The repository over `items`.
    pub fn new(items: Arc<dyn ItemStore>) -> Self {
        Self {
            items,
            table: accounts_table(),
        }
    }

    /// Creates a tenant and its first user together; `Conflict` when the e-mail is taken.
    pub async fn create_account(&self, tenant: &TenantRecord, user: &UserRecord) -> StoreResult<()> {
        let claim = record_item(&json!({ "user_id": user.id }), email_key(&user.email), &[])?;
        let writes = vec![
            self.put_new(claim),
            self.put_new(record_item(tenant, tenant_key(&tenant.id), &[])?),
            self.put_new(user_item(user)?),
        ];
        self.items.transact(writes).await
    }

    /// Creates the personal tenant and user of a chat user (`telegram:123`) first seen by a bot;
    /// `Conflict` when another request created them first.
    pub async fn create_chat_account(
        &self,
        user_ref: &str,
        tenant: &TenantRecord,
        user: &UserRecord,
    ) -> StoreResult<()> {
        let claim = record_item(&json!({ "user_id": user.id }), user_ref_key(user_ref), &[])?;
        let writes = vec![
            self.put_new(claim),
            self.put_new(record_item(tenant, tenant_key(&tenant.id), &[])?),
            self.put_new(user_item(user)?),
        ];
        self.items.transact(writes).await
    }

    /// The user a chat user (`telegram:123`) maps to.
    pub async fn chat_user(&self, user_ref: &str) -> StoreResult<Option<UserRecord>> {
        let Some(claim) = self.items.get(&self.table, &user_ref_key(user_ref)).await? else {
            return Ok(None);
        };
        match claim.get("user_id").and_then(Value::as_str) {
            Some(id) => self.user(&UserId::parse(id).map_err(corrupt)?).await,
            None => Err(StoreError::Internal(format!("the claim of {user_ref} has no user"))),
        }
    }

    /// Adds a user to an existing tenant; `Conflict` when the e-mail is taken.
    pub async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let claim = record_item(&json!({ "user_id": user.id }), email_key(&user.email), &[])?;
        let tenant_exists = Write::Check {
            table: self.table.clone(),
            key: tenant_key(&user.tenant_id),
            condition: Condition::Exists,
        };
        let writes = vec![self.put_new(claim), self.put_new(user_item(user)?), tenant_exists];
        self.items.transact(writes).await
    }

    /// The user with this normalised e-mail.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let Some(claim) = self.items.get(&self.table, &email_key(email)).await? else {
            return Ok(None);
        };
        match claim.get("user_id").and_then(Value::as_str) {
            Some(id) => self.user(&UserId::parse(id).map_err(corrupt)?).await,
            None => Err(StoreError::Internal(format!("e-mail claim of {email} has no user"))),
        }
    }

    /// The user with this id.
    pub async fn user(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        self.get_record(user_key(id)).await
    }

    /// Changes a user's role.
    pub async fn set_role(&self, id: &UserId, role: Role) -> StoreResult<()> {
        let update = Update::set("role", role.as_str());
        self.items
            .update(&self.table, &user_key(id), update, Some(Condition::Exists))
            .await
            .map(drop)
    }

    /// Moves a tenant to another plan.
    pub async fn set_plan(&self, id: &TenantId, plan: PlanTier) -> StoreResult<()> {
        let update = Update::set("plan", plan.as_str());
        self.items
            .update(&self.table, &tenant_key(id), update, Some(Condition::Exists))
            .await
            .map(drop)
    }

    /// The tenant with this id.
    pub async fn tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRecord>> {
        self.get_record(tenant_key(id)).await
    }

    /// Stores a new API key; `Conflict` if its prefix is taken.
    pub async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let index = [
            ("gsi1pk", json!(format!("TENANT#{}#APIKEYS", key.tenant_id))),
            ("gsi1sk", json!(format!("{:020}#{}", key.created_at, key.id))),
        ];
        let item = record_item(key, api_key_key(key.prefix()), &index)?;
        self.items.put(&self.table, item, Some(Condition::NotExists)).await
    }

    /// The API key with this public prefix.
    pub async fn api_key(&self, prefix: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.get_record(api_key_key(prefix)).await
    }

    /// A tenant's API keys, oldest first; only `owner`'s when given.
    pub async fn list_api_keys(&self, tenant: &TenantId, owner: Option<&UserId>) -> StoreResult<Vec<ApiKeyRecord>> {
        let mut query = Query::partition(format!("TENANT#{tenant}#APIKEYS"));
        query.index = Some("gsi1".into());
        let mut keys = Vec::new();
        loop {
            let page = self.items.query(&self.table, query.clone()).await?;
            for item in page.items {
                let key: ApiKeyRecord = from_item(item)?;
                if owner.is_none_or(|owner| *owner == key.user_id) {
                    keys.push(key);
                }
            }
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(keys),
            }
        }
    }

    /// Deletes a key of `tenant` (and of `owner`, when given); `NotFound` when there is no such
    /// key there, so a foreign key looks exactly like a missing one.
    pub async fn delete_api_key(&self, id: &ApiKeyId, tenant: &TenantId, owner: Option<&UserId>) -> StoreResult<()> {
        let prefix = &id.as_str()[ApiKeyId::PREFIX.len()..];
        let mut conditions = vec![Condition::equals("tenant_id", tenant.as_str())];
        if let Some(owner) = owner {
            conditions.push(Condition::equals("user_id", owner.as_str()));
        }
        let deleted = self
            .items
            .delete(&self.table, &api_key_key(prefix), Some(Condition::All(conditions)))
            .await;
        match deleted {
            Err(StoreError::Conflict(_)) => Err(StoreError::NotFound(format!("API key {id}"))),
            other => other,
        }
    }

    /// Records that a key was used at `now`, at most once per `every` seconds (a lost race or
    /// a recent record is not an error).
    pub async fn touch_api_key(&self, prefix: &str, now: i64, every: i64) -> StoreResult<()> {
        let stale = Condition::All(vec![
            Condition::Exists,
            Condition::Compare("last_used_at".into(), Cmp::Lt, json!(now - every)),
        ]);
        let never = Condition::All(vec![
            Condition::Exists,
            Condition::AttributeNotExists("last_used_at".into()),
        ]);
        for condition in [never, stale] {
            let update = Update::set("last_used_at", now);
            match self
                .items
                .update(&self.table, &api_key_key(prefix), update, Some(condition))
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Stores a new service key; `Conflict` if its prefix is taken.
    pub async fn create_service_key(&self, key: &ServiceKeyRecord) -> StoreResult<()> {
        let item = record_item(key, service_key_key(&key.prefix), &[])?;
        self.items.put(&self.table, item, Some(Condition::NotExists)).await
    }

    /// The service key with this public prefix.
    pub async fn service_key(&self, prefix: &str) -> StoreResult<Option<ServiceKeyRecord>> {
        self.get_record(service_key_key(prefix)).await
    }

    /// Starts a session: its family item and its first refresh token.
    pub async fn start_session(&self, token: &RefreshRecord) -> StoreResult<()> {
        let family = record_item(
            &json!({ "user_id": token.user_id, "revoked": false }),
            family_key(&token.family),
            &[("ttl", json!(token.expires_at))],
        )?;
        self.items
            .transact(vec![self.put_new(family), self.put_new(refresh_item(token)?)])
            .await
    }

    /// The refresh token with this hash, used or not.
    pub async fn refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>> {
        self.get_record(refresh_key(token_hash)).await
    }

    /// Exchanges `used` for `next` in one transaction: `used` must be unused and its family not
    /// revoked, otherwise `Conflict` and nothing changes. The family's expiry moves to `next`'s.
    pub async fn rotate_refresh(&self, used: &RefreshRecord, next: &RefreshRecord) -> StoreResult<()> {
        let writes = vec![
            Write::Update {
                table: self.table.clone(),
                key: refresh_key(&used.token_hash),
                update: Update::set("used", true),
                condition: Some(Condition::equals("used", false)),
            },
            Write::Update {
                table: self.table.clone(),
                key: family_key(&used.family),
                update: Update::set("ttl", next.expires_at),
                condition: Some(Condition::equals("revoked", false)),
            },
            self.put_new(refresh_item(next)?),
        ];
        self.items.transact(writes).await
    }

    /// Revokes a session: none of its refresh tokens is accepted any more.
    pub async fn revoke_family(&self, family: &str) -> StoreResult<()> {
        let update = Update::set("revoked", true);
        match self
            .items
            .update(&self.table, &family_key(family), update, Some(Condition::Exists))
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Whether the session is live (exists, not revoked, not expired).
    pub async fn family_is_live(&self, family: &str) -> StoreResult<bool> {
        let item = self.items.get(&self.table, &family_key(family)).await?;
        Ok(item.is_some_and(|item| item.get("revoked") == Some(&Value::Bool(false))))
    }

    /// Revokes an access token by its `jti` until `expires_at` (unix seconds).
    pub async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> StoreResult<()> {
        let item = record_item(&json!({}), revoked_key(jti), &[("ttl", json!(expires_at))])?;
        self.items.put(&self.table, item, None).await
    }

    /// Whether the access token with this `jti` was revoked.
    pub async fn access_token_is_revoked(&self, jti: &str) -> StoreResult<bool> {
        Ok(self.items.get(&self.table, &revoked_key(jti)).await?.is_some())
    }

    /// Marks a one-time setup step done; `false` when it already was.
    pub async fn claim_setup(&self, name: &str, now: i64) -> StoreResult<bool> {
        let item = record_item(&json!({ "at": now }), Key::new(format!("SETUP#{name}"), "SETUP"), &[])?;
        match self.items.put(&self.table, item, Some(Condition::NotExists)).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    fn put_new(&self, item: Item) -> Write {
        Write::Put {
            table: self.table.clone(),
            item,
            condition: Some(Condition::NotExists),
        }
    }

    async fn get_record<T: DeserializeOwned>(&self, key: Key) -> StoreResult<Option<T>> {
        self.items.get(&self.table, &key).await?.map(from_item).transpose()
    }
}

fn tenant_key(id: &TenantId) -> Key {
    Key::new(format!("TENANT#{id}"), "TENANT")
}

fn user_key(id: &UserId) -> Key {
    Key::new(format!("USER#{id}"), "USER")
}

fn email_key(email: &str) -> Key {
    Key::new(format!("EMAIL#{email}"), "EMAIL")
}

fn user_ref_key(user_ref: &str) -> Key {
    Key::new(format!("USERREF#{user_ref}"), "USERREF")
}

fn api_key_key(prefix: &str) -> Key {
    Key::new(format!("APIKEY#{prefix}"), "APIKEY")
}

fn service_key_key(prefix: &str) -> Key {
    Key::new(format!("SVCKEY#{prefix}"), "SVCKEY")
}

fn refresh_key(token_hash: &str) -> Key {
    Key::new(format!("REFRESH#{token_hash}"), "REFRESH")
}

fn family_key(family: &str) -> Key {
    Key::new(format!("FAMILY#{family}"), "FAMILY")
}

fn revoked_key(jti: &str) -> Key {
    Key::new(format!("JTI#{jti}"), "REVOKED")
}

fn user_item(user: &UserRecord) -> StoreResult<Item> {
    let index = [
        ("gsi1pk", json!(format!("TENANT#{}#USERS", user.tenant_id))),
        ("gsi1sk", json!(user.id)),
    ];
    record_item(user, user_key(&user.id), &index)
}

fn refresh_item(token: &RefreshRecord) -> StoreResult<Item> {
    record_item(
        token,
        refresh_key(&token.token_hash),
        &[("ttl", json!(token.expires_at))],
    )
}

/// `record`'s fields plus the key and the extra attributes.
fn record_item<T: Serialize>(record: &T, key: Key, extra: &[(&str, Value)]) -> StoreResult<Item> {
    let Value::Object(mut item) =
        serde_json::to_value(record).map_err(|error| StoreError::Internal(error.to_string()))?
    else {
        return Err(StoreError::Internal("a record must serialise to an object".into()));
    };
    item.insert(crate::item::PK.into(), key.pk.into());
    item.insert(crate::item::SK.into(), key.sk.into());
    for (name, value) in extra {
        item.insert((*name).into(), value.clone());
    }
    Ok(item)
}

fn from_item<T: DeserializeOwned>(item: Item) -> StoreResult<T> {
    serde_json::from_value(Value::Object(item)).map_err(corrupt)
}

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("an account item does not read back: {error}"))
}
