//! Every table, queue and bucket Tessera uses, defined once. The AWS bootstrap creates them from
//! here and the embedded backend follows the same definitions, so the two never drift.

use std::time::Duration;

use tessera_core::{Capability, Catalog, Frontend, Priority};

use crate::blob::BucketDef;
use crate::error::{StoreError, StoreResult};
use crate::item::{IndexDef, TableDef};
use crate::queue::QueueDef;

/// How many days generated outputs are kept before the bucket lifecycle deletes them.
pub const OUTPUT_RETENTION_DAYS: u32 = 7;
/// How many receives a job message gets before it is dead-lettered. Jobs count their own
/// attempts too; this is the backstop for messages that crash their consumer.
pub const JOB_MAX_RECEIVES: u32 = 5;

/// The whole set of resources of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definitions {
    /// DynamoDB tables (SQLite tables on the embedded backend).
    pub tables: Vec<TableDef>,
    /// SQS queues, dead-letter queues included.
    pub queues: Vec<QueueDef>,
    /// S3 buckets (folders on the embedded backend).
    pub buckets: Vec<BucketDef>,
}

impl Definitions {
    /// Tessera's resources.
    pub fn tessera() -> Self {
        let mut queues: Vec<QueueDef> = Catalog::active()
            .models
            .iter()
            .flat_map(|model| {
                Priority::ALL
                    .into_iter()
                    .map(move |priority| job_queue(model.capability, &model.id, priority))
            })
            .collect();
        queues.push(webhook_queue());
        queues.extend(Frontend::ALL.map(notify_queue));
        Self {
            tables: vec![accounts_table(), jobs_table(), platform_table()],
            queues,
            buckets: vec![artifacts_bucket(), files_bucket()],
        }
    }

    /// Checks every definition, and that names are unique.
    pub fn validate(&self) -> StoreResult<()> {
        for queue in &self.queues {
            queue.validate()?;
        }
        let mut names: Vec<String> = self.tables.iter().map(|t| format!("table {}", t.name)).collect();
        names.extend(self.queues.iter().map(|q| format!("queue {}", q.name)));
        names.extend(self.buckets.iter().map(|b| format!("bucket {}", b.name)));
        names.sort();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(StoreError::InvalidInput(format!("{} is defined twice", pair[0])));
        }
        Ok(())
    }
}

/// The two generic secondary indexes every table has: `gsi1` on (`gsi1pk`, `gsi1sk`) and
/// `gsi2` on (`gsi2pk`, `gsi2sk`). Items opt in by carrying the attributes.
fn generic_indexes() -> Vec<IndexDef> {
    (1..=2)
        .map(|n| IndexDef {
            name: format!("gsi{n}"),
            partition_key: format!("gsi{n}pk"),
            sort_key: format!("gsi{n}sk"),
        })
        .collect()
}

fn table(name: &str) -> TableDef {
    TableDef {
        name: name.into(),
        indexes: generic_indexes().into(),
    }
}

/// Tenants, users, API keys, plans, usage counters, rate-limit windows.
pub fn accounts_table() -> TableDef {
    table("accounts")
}

/// Jobs, their events, webhook deliveries, idempotency records.
pub fn jobs_table() -> TableDef {
    table("jobs")
}

/// Projects, resources, domains, files, conversations.
pub fn platform_table() -> TableDef {
    table("platform")
}

/// The lane of one model's jobs at one priority, with its dead-letter queue. Lanes are per model
/// so that a worker can poll the models it has loaded before the others (model affinity).
pub fn job_queue(capability: Capability, model: &str, priority: Priority) -> QueueDef {
    let name = format!("jobs-{capability}-{model}-{priority}");
    QueueDef {
        visibility_timeout: Duration::from_secs(60),
        ..QueueDef::standard(&name)
    }
    .with_dead_letter(QueueDef::standard(format!("{name}-dlq")), JOB_MAX_RECEIVES)
}

/// Webhook attempts waiting to be made (one message per attempt). The visibility timeout
/// outlasts an attempt (a 10 s POST) and the sender Lambda's 30 s timeout.
pub fn webhook_queue() -> QueueDef {
    QueueDef {
        visibility_timeout: Duration::from_secs(60),
        ..QueueDef::standard("webhooks")
    }
    .with_dead_letter(QueueDef::standard("webhooks-dlq"), 10)
}

/// Job events for one chat frontend, FIFO per chat user so that they arrive in order.
pub fn notify_queue(frontend: Frontend) -> QueueDef {
    QueueDef::fifo(format!("notify-{frontend}.fifo"))
        .with_dead_letter(QueueDef::fifo(format!("notify-{frontend}-dlq.fifo")), 10)
}

/// Generated outputs and thumbnails; deleted after [`OUTPUT_RETENTION_DAYS`].
pub fn artifacts_bucket() -> BucketDef {
    BucketDef {
        name: "artifacts".into(),
        expire_after_days: Some(OUTPUT_RETENTION_DAYS),
    }
}

/// Project files and uploads; kept until deleted.
pub fn files_bucket() -> BucketDef {
    BucketDef {
        name: "files".into(),
        expire_after_days: None,
    }
}

/// Maps logical names to the physical names of one deployment: `<prefix>-<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
}

impl Naming {
    /// The prefix used when `TESSERA_RESOURCE_PREFIX` is not set.
    pub const DEFAULT_PREFIX: &'static str = "tessera";

    /// A naming with `prefix`: 1 to 20 lowercase letters, digits or hyphens, starting with a
    /// letter (it must fit S3 bucket names and SQS queue names).
    pub fn new(prefix: impl Into<String>) -> StoreResult<Self> {
        let prefix = prefix.into();
        let valid = (1..=20).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && !prefix.ends_with('-')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self { prefix })
        } else {
            Err(StoreError::InvalidInput(format!(
                "resource prefix '{prefix}' must be 1 to 20 lowercase letters, digits or hyphens, starting with a letter"
            )))
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The physical name of a logical resource name.
    pub fn physical(&self, logical: &str) -> String {
        format!("{}-{logical}", self.prefix)
    }
}

impl Default for Naming {
    fn default() -> Self {
        Self {
            prefix: Self::DEFAULT_PREFIX.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tessera_definitions_are_valid_and_complete() {
        let definitions = Definitions::tessera();
        definitions.validate().expect("valid");
        let models = Catalog::active().models.len();
        assert_eq!(
            definitions.queues.len(),
            models * 3 + 1 + 2,
            "a lane per model and priority"
        );
        assert!(definitions.queues.iter().all(|q| q.dead_letter.is_some()));
        assert_eq!(
            job_queue(Capability::Image, "sdxl", Priority::Normal).name,
            "jobs-image-sdxl-normal"
        );
        assert_eq!(artifacts_bucket().expire_after_days, Some(7));
        assert!(definitions.tables.iter().all(|t| t.indexes.len() == 2));
    }

    #[test]
    fn physical_names_fit_aws_limits() {
        let naming = Naming::new("tessera-staging-eu1").expect("prefix");
        for queue in Definitions::tessera().queues {
            let dlq = queue.dead_letter.expect("dlq").queue;
            assert!(naming.physical(&dlq.name).len() <= 80, "{}", dlq.name);
        }
        assert!(naming.physical("artifacts").len() <= 63);
        for bad in ["", "Tessera", "1abc", "a_b", "abc-", "a-very-long-prefix-indeed"] {
            assert!(Naming::new(bad).is_err(), "{bad}");
        }
    }
}
