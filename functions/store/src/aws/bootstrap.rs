//! Creating the tables, queues and buckets of a deployment, idempotently: each `ensure_*` leaves
//! an existing resource in place (bringing its settings up to date) and says whether it created
//! one.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::operation::head_bucket::HeadBucketError;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::errors::{built, is, store_error};
use super::{AwsStore, DEFAULT_REGION};
use crate::blob::BucketDef;
use crate::definitions::Definitions;
use crate::error::{StoreError, StoreResult};
use crate::item::{IndexDef, PK, SK, TTL, TableDef};
use crate::queue::{DeadLetter, QueueDef};

/// How often a new table's status is checked.
const TABLE_POLL: Duration = Duration::from_secs(1);
/// How many checks before giving up on a table becoming active (DynamoDB takes seconds to a
/// minute or two).
const TABLE_POLLS: u32 = 300;
/// The id of the lifecycle rule that expires a bucket's objects.
const EXPIRY_RULE_ID: &str = "tessera-expire-objects";

/// What a bootstrap found: the resources it created and those already there, each as
/// `<kind> <physical name>`, e.g. `table tessera-jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootstrapReport {
    /// Resources this run created.
    pub created: Vec<String>,
    /// Resources that already existed (their settings were brought up to date).
    pub existing: Vec<String>,
}

impl BootstrapReport {
    fn record(&mut self, kind: &str, name: &str, created: bool) {
        let list = if created { &mut self.created } else { &mut self.existing };
        list.push(format!("{kind} {name}"));
    }
}

impl fmt::Display for BootstrapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for resource in &self.created {
            writeln!(f, "created  {resource}")?;
        }
        for resource in &self.existing {
            writeln!(f, "exists   {resource}")?;
        }
        write!(
            f,
            "{} created, {} already there",
            self.created.len(),
            self.existing.len()
        )
    }
}

impl AwsStore {
    /// Creates every table, queue (with its dead-letter queue) and bucket of `definitions` that
    /// does not exist yet. Safe to run again: a second run creates nothing.
    pub async fn bootstrap(&self, definitions: &Definitions) -> StoreResult<BootstrapReport> {
        definitions.validate()?;
        let mut report = BootstrapReport::default();
        for table in &definitions.tables {
            let created = self.ensure_table(table).await?;
            report.record("table", &self.table_name(table), created);
        }
        for queue in &definitions.queues {
            self.ensure_queue_reporting(queue, &mut report).await?;
        }
        for bucket in &definitions.buckets {
            let created = self.ensure_bucket(bucket).await?;
            report.record("bucket", &self.bucket_name(bucket), created);
        }
        Ok(report)
    }

    /// Makes sure the table exists (on-demand, `pk`/`sk` keys, its indexes, TTL on `ttl`,
    /// point-in-time recovery) and is active; returns whether it was created.
    pub async fn ensure_table(&self, table: &TableDef) -> StoreResult<bool> {
        let name = self.table_name(table);
        let created = self.create_table(table, &name).await?;
        let description = self.wait_until_active(&name).await?;
        if let Some(missing) = table.indexes.iter().find(|index| !has_index(&description, &index.name)) {
            return Err(StoreError::Internal(format!(
                "table {name} exists without index {}; add it or recreate the table",
                missing.name
            )));
        }
        self.enable_ttl(&name).await?;
        self.enable_recovery(&name).await?;
        Ok(created)
    }

    /// Makes sure the queue exists with its settings, after its dead-letter queue; returns
    /// whether the queue itself was created.
    pub async fn ensure_queue(&self, queue: &QueueDef) -> StoreResult<bool> {
        self.ensure_queue_reporting(queue, &mut BootstrapReport::default())
            .await
    }

    /// Makes sure the bucket exists, with its expiry rule if it has one; returns whether it was
    /// created.
    pub async fn ensure_bucket(&self, bucket: &BucketDef) -> StoreResult<bool> {
        let name = self.bucket_name(bucket);
        let created = !self.bucket_exists(&name).await? && self.create_bucket(&name).await?;
        if let Some(days) = bucket.expire_after_days {
            self.expire_objects(&name, days).await?;
        }
        Ok(created)
    }

    async fn create_table(&self, table: &TableDef, name: &str) -> StoreResult<bool> {
        let definitions = attribute_definitions(table)?;
        let indexes = table
            .indexes
            .iter()
            .map(global_index)
            .collect::<StoreResult<Vec<_>>>()?;
        let result = self
            .dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(definitions))
            .set_key_schema(Some(key_schema(PK, SK)?))
            .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is(&error, "ResourceInUseException") => Ok(false),
            Err(error) => Err(store_error(&format!("CreateTable {name}"), error)),
        }
    }

    async fn wait_until_active(&self, name: &str) -> StoreResult<TableDescription> {
        for _ in 0..TABLE_POLLS {
            let output = self
                .dynamodb
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|error| store_error(&format!("DescribeTable {name}"), error))?;
            if let Some(description) = output.table().filter(|table| is_active(table)) {
                return Ok(description.clone());
            }
            tokio::time::sleep(TABLE_POLL).await;
        }
        Err(StoreError::Unavailable(format!("table {name} did not become active")))
    }

    /// Turns on point-in-time recovery (as `template.yaml` does). A table created moments ago
    /// may answer that its backups are still being enabled: that is retried.
    async fn enable_recovery(&self, name: &str) -> StoreResult<()> {
        let specification = built(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build(),
        )?;
        for _ in 0..TABLE_POLLS {
            let result = self
                .dynamodb
                .update_continuous_backups()
                .table_name(name)
                .point_in_time_recovery_specification(specification.clone())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(error) if is(&error, "ContinuousBackupsUnavailableException") => {
                    tokio::time::sleep(TABLE_POLL).await;
                }
                Err(error) => return Err(store_error(&format!("UpdateContinuousBackups {name}"), error)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "table {name}: point-in-time recovery could not be turned on"
        )))
    }

    async fn enable_ttl(&self, name: &str) -> StoreResult<()> {
        let output = self
            .dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(|error| store_error(&format!("DescribeTimeToLive {name}"), error))?;
        let current = output.time_to_live_description();
        let status = current.and_then(|ttl| ttl.time_to_live_status());
        if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
            return match current.and_then(|ttl| ttl.attribute_name()) {
                Some(TTL) => Ok(()),
                other => Err(StoreError::Internal(format!(
                    "table {name} expires items by {other:?}, not '{TTL}'"
                ))),
            };
        }
        let specification = built(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build(),
        )?;
        let result = self
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(specification)
            .send()
            .await;
        match result {
            // Another bootstrap enabled it between the two calls.
            Err(error)
                if error
                    .message()
                    .is_some_and(|message| message.contains("already enabled")) =>
            {
                Ok(())
            }
            Err(error) => Err(store_error(&format!("UpdateTimeToLive {name}"), error)),
            Ok(_) => Ok(()),
        }
    }

    async fn ensure_queue_reporting(&self, queue: &QueueDef, report: &mut BootstrapReport) -> StoreResult<bool> {
        queue.validate()?;
        let redrive = match &queue.dead_letter {
            Some(dead_letter) => {
                let created = self.put_queue(&dead_letter.queue, None).await?;
                report.record("queue", &self.queue_name(&dead_letter.queue), created);
                Some(self.redrive_policy(dead_letter).await?)
            }
            None => None,
        };
        let created = self.put_queue(queue, redrive).await?;
        report.record("queue", &self.queue_name(queue), created);
        Ok(created)
    }

    /// Creates the queue, or updates the settings of the existing one.
    async fn put_queue(&self, queue: &QueueDef, redrive_policy: Option<String>) -> StoreResult<bool> {
        let name = self.queue_name(queue);
        let attributes = queue_attributes(queue, redrive_policy);
        match self.sqs.get_queue_url().queue_name(&name).send().await {
            Ok(output) => {
                let url = returned_url(output.queue_url(), &name)?;
                self.sqs
                    .set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(|error| store_error(&format!("SetQueueAttributes {name}"), error))?;
                self.remember_queue_url(name, &url);
                Ok(false)
            }
            Err(error) if is(&error, "NonExistentQueue") => {
                self.create_queue(name, queue.fifo, attributes).await?;
                Ok(true)
            }
            Err(error) => Err(store_error(&format!("GetQueueUrl {name}"), error)),
        }
    }

    async fn create_queue(&self, name: String, fifo: bool, mut attributes: QueueAttributes) -> StoreResult<()> {
        if fifo {
            // Only settable at creation.
            attributes.insert(QueueAttributeName::FifoQueue, "true".into());
        }
        let output = self
            .sqs
            .create_queue()
            .queue_name(&name)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|error| store_error(&format!("CreateQueue {name}"), error))?;
        let url = returned_url(output.queue_url(), &name)?;
        self.remember_queue_url(name, &url);
        Ok(())
    }

    async fn redrive_policy(&self, dead_letter: &DeadLetter) -> StoreResult<String> {
        let url = self.queue_url(&dead_letter.queue).await?;
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|error| store_error(&format!("GetQueueAttributes {url}"), error))?;
        let arn = output
            .attributes()
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
            .ok_or_else(|| StoreError::Internal(format!("GetQueueAttributes {url} returned no QueueArn")))?;
        Ok(redrive_policy(arn, dead_letter.max_receives))
    }

    async fn bucket_exists(&self, name: &str) -> StoreResult<bool> {
        match self.s3.head_bucket().bucket(name).send().await {
            Ok(_) => Ok(true),
            Err(error) if matches!(error.as_service_error(), Some(HeadBucketError::NotFound(_))) => Ok(false),
            Err(error) => Err(store_error(&format!("HeadBucket {name}"), error)),
        }
    }

    async fn create_bucket(&self, name: &str) -> StoreResult<bool> {
        // us-east-1 is the one region that takes no location constraint.
        let configuration = (self.region.as_ref() != DEFAULT_REGION).then(|| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(self.region.as_ref()))
                .build()
        });
        let result = self
            .s3
            .create_bucket()
            .bucket(name)
            .set_create_bucket_configuration(configuration)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match error.as_service_error() {
                Some(CreateBucketError::BucketAlreadyOwnedByYou(_)) => Ok(false),
                Some(CreateBucketError::BucketAlreadyExists(_)) => Err(StoreError::InvalidInput(format!(
                    "bucket name {name} is taken by another account; choose another resource prefix"
                ))),
                _ => Err(store_error(&format!("CreateBucket {name}"), error)),
            },
        }
    }

    async fn expire_objects(&self, name: &str, days: u32) -> StoreResult<()> {
        let rule = LifecycleRule::builder()
            .id(EXPIRY_RULE_ID)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .status(ExpirationStatus::Enabled)
            .expiration(
                LifecycleExpiration::builder()
                    .days(i32::try_from(days).unwrap_or(i32::MAX))
                    .build(),
            )
            .build();
        let configuration = built(BucketLifecycleConfiguration::builder().rules(built(rule)?).build())?;
        self.s3
            .put_bucket_lifecycle_configuration()
            .bucket(name)
            .lifecycle_configuration(configuration)
            .send()
            .await
            .map_err(|error| store_error(&format!("PutBucketLifecycleConfiguration {name}"), error))?;
        Ok(())
    }
}

/// Every key attribute of the table and its indexes, once each: all strings.
fn attribute_definitions(table: &TableDef) -> StoreResult<Vec<AttributeDefinition>> {
    let mut attributes = vec![PK, SK];
    for index in table.indexes.iter() {
        for key in [&index.partition_key, &index.sort_key] {
            if !attributes.contains(&key.as_str()) {
                attributes.push(key);
            }
        }
    }
    attributes
        .into_iter()
        .map(|attribute| {
            let definition = AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::S);
            built(definition.build())
        })
        .collect()
}

type QueueAttributes = HashMap<QueueAttributeName, String>;

/// The settings of a queue that can change after creation.
fn queue_attributes(queue: &QueueDef, redrive_policy: Option<String>) -> QueueAttributes {
    let mut attributes = QueueAttributes::from([(
        QueueAttributeName::VisibilityTimeout,
        queue.visibility_timeout.as_secs().to_string(),
    )]);
    if let Some(policy) = redrive_policy {
        attributes.insert(QueueAttributeName::RedrivePolicy, policy);
    }
    if queue.fifo {
        // Without a deduplication id, a FIFO message is deduplicated on its body's SHA-256.
        attributes.insert(QueueAttributeName::ContentBasedDeduplication, "true".into());
    }
    attributes
}

fn redrive_policy(dead_letter_arn: &str, max_receives: u32) -> String {
    serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": max_receives.to_string(),
    })
    .to_string()
}

fn returned_url(url: Option<&str>, name: &str) -> StoreResult<String> {
    url.map(str::to_owned)
        .ok_or_else(|| StoreError::Internal(format!("SQS returned no URL for queue {name}")))
}

fn key_schema(partition_key: &str, sort_key: &str) -> StoreResult<Vec<KeySchemaElement>> {
    [(partition_key, KeyType::Hash), (sort_key, KeyType::Range)]
        .into_iter()
        .map(|(attribute, key_type)| {
            built(
                KeySchemaElement::builder()
                    .attribute_name(attribute)
                    .key_type(key_type)
                    .build(),
            )
        })
        .collect()
}

fn global_index(index: &IndexDef) -> StoreResult<GlobalSecondaryIndex> {
    built(
        GlobalSecondaryIndex::builder()
            .index_name(&index.name)
            .set_key_schema(Some(key_schema(&index.partition_key, &index.sort_key)?))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build(),
    )
}

fn is_active(table: &TableDescription) -> bool {
    table.table_status() == Some(&TableStatus::Active)
        && table
            .global_secondary_indexes()
            .iter()
            .all(|index| index.index_status().is_none_or(|status| status.as_str() == "ACTIVE"))
}

fn has_index(table: &TableDescription, name: &str) -> bool {
    table
        .global_secondary_indexes()
        .iter()
        .any(|index| index.index_name() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_list_what_was_created_and_found() {
        let mut report = BootstrapReport::default();
        report.record("table", "tessera-jobs", true);
        report.record("queue", "tessera-webhooks", false);
        assert_eq!(report.created, ["table tessera-jobs"]);
        assert_eq!(
            report.to_string(),
            "created  table tessera-jobs\nexists   queue tessera-webhooks\n1 created, 1 already there"
        );
    }

    #[test]
    fn queues_get_their_timeout_redrive_and_deduplication() {
        let standard = QueueDef::standard("jobs");
        let attributes = queue_attributes(&standard, Some(redrive_policy("arn:dlq", 5)));
        assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "30");
        let policy: serde_json::Value =
            serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).expect("json");
        assert_eq!(
            policy,
            serde_json::json!({"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": "5"})
        );
        assert!(!attributes.contains_key(&QueueAttributeName::ContentBasedDeduplication));
        let fifo = queue_attributes(&QueueDef::fifo("notify.fifo"), None);
        assert_eq!(fifo[&QueueAttributeName::ContentBasedDeduplication], "true");
        assert_eq!(fifo.len(), 2);
    }

    #[test]
    fn each_key_attribute_is_defined_once() {
        let names: Vec<String> = attribute_definitions(&crate::definitions::jobs_table())
            .expect("definitions")
            .iter()
            .map(|definition| definition.attribute_name().to_owned())
            .collect();
        assert_eq!(names, ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"]);
    }

    #[test]
    fn indexes_are_keyed_on_their_two_attributes() {
        let index = IndexDef {
            name: "gsi1".into(),
            partition_key: "gsi1pk".into(),
            sort_key: "gsi1sk".into(),
        };
        let index = global_index(&index).expect("index");
        let keys: Vec<_> = index
            .key_schema()
            .iter()
            .map(|key| (key.attribute_name(), key.key_type().clone()))
            .collect();
        assert_eq!(keys, [("gsi1pk", KeyType::Hash), ("gsi1sk", KeyType::Range)]);
        assert_eq!(
            index.projection().and_then(Projection::projection_type),
            Some(&ProjectionType::All)
        );
    }
}
