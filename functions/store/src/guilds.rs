//! Chat servers' settings, held by a server admin: the most steps a job may ask for, the models
//! it may use, and a per-member daily job cap.
//!
//! | item | table | pk | sk |
//! | --- | --- | --- | --- |
//! | settings | platform | `GUILD#<guild ref>` | `SETTINGS` |

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::StoreResult;
use crate::definitions::platform_table;
use crate::item::{ItemStore, Key, TableDef};
use crate::jobs::{from_item, to_item};

/// One server's settings; `None` leaves a setting to the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildSettings {
    /// The most sampling steps a job may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// The model ids jobs may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    /// Jobs per member per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_jobs_per_user: Option<u32>,
}

/// Reads and writes server settings.
#[derive(Clone)]
pub struct Guilds {
    items: Arc<dyn ItemStore>,
    table: TableDef,
}

impl std::fmt::Debug for Guilds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guilds").finish_non_exhaustive()
    }
}

impl Guilds {
    /// The repository over `items`.
    pub fn new(items: Arc<dyn ItemStore>) -> Self {
        Self {
            items,
            table: platform_table(),
        }
    }

    /// A server's settings (all unset when it never saved any).
    pub async fn settings(&self, guild: &str) -> StoreResult<GuildSettings> {
        Ok(self
            .items
            .get(&self.table, &key(guild))
            .await?
            .map(from_item)
            .transpose()?
            .unwrap_or_default())
    }

    /// Replaces a server's settings.
    pub async fn save(&self, guild: &str, settings: &GuildSettings) -> StoreResult<()> {
        let mut item = to_item(settings)?;
        let key = key(guild);
        item.insert("pk".into(), key.pk.into());
        item.insert("sk".into(), key.sk.into());
        self.items.put(&self.table, item, None).await
    }
}

fn key(guild: &str) -> Key {
    Key::new(format!("GUILD#{guild}"), "SETTINGS")
}
