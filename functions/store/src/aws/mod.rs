//! The AWS backend: the item store and the counters on DynamoDB, the queue on SQS and the blob
//! store on S3.
//!
//! The clients honour the SDK's usual configuration (environment, profiles, IMDS), including
//! `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_DYNAMODB`, `_SQS` and `_S3`, so the
//! same code runs against AWS, LocalStack and moto. Physical resource names come from
//! [`Naming`]. DynamoDB deletes expired items lazily, so this backend enforces the port's TTL
//! rule itself, against the injected clock.

mod attributes;
mod blobs;
mod bootstrap;
mod counters;
mod errors;
mod expressions;
mod items;
mod queue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::Region;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use tessera_core::Clock;

pub use bootstrap::BootstrapReport;

use crate::blob::BucketDef;
use crate::definitions::Naming;
use crate::error::StoreResult;
use crate::item::TableDef;
use crate::queue::{MAX_WAIT, QueueDef};

/// The region used when the configuration names none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// How long one DynamoDB call may take before it is retried or reported unavailable.
const ITEM_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one SQS call may take: a long poll holds the connection up to [`MAX_WAIT`].
const QUEUE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(MAX_WAIT.as_secs() + 10);

/// The ports on DynamoDB, SQS and S3.
#[derive(Debug)]
pub struct AwsStore {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    naming: Naming,
    clock: Arc<dyn Clock>,
    region: Region,
    /// Physical queue name to queue URL, filled by `GetQueueUrl` and `CreateQueue`.
    queue_urls: Mutex<HashMap<String, String>>,
    /// The FIFO messages sent in the deduplication window, to answer duplicates.
    sent: Mutex<queue::SentMessages>,
}

impl AwsStore {
    /// Loads the AWS configuration the standard way (environment, profile, IMDS, ...) and
    /// builds the clients.
    pub async fn from_env(naming: Naming, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Ok(Self::new(&sdk_config, naming, clock))
    }

    /// Builds the clients from a loaded configuration, in [`DEFAULT_REGION`] when it names no
    /// region. With a custom endpoint, S3 uses path-style addressing (`host/bucket/key`), as
    /// emulators do not resolve `bucket.host`.
    pub fn new(sdk_config: &SdkConfig, naming: Naming, clock: Arc<dyn Clock>) -> Self {
        let region = sdk_config
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new(DEFAULT_REGION));
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk_config)
            .region(region.clone())
            .timeout_config(attempt_timeout(ITEM_ATTEMPT_TIMEOUT))
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(sdk_config)
            .region(region.clone())
            .timeout_config(attempt_timeout(QUEUE_ATTEMPT_TIMEOUT))
            .build();
        let s3 = aws_sdk_s3::config::Builder::from(sdk_config)
            .region(region.clone())
            .force_path_style(has_custom_endpoint(sdk_config))
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            s3: aws_sdk_s3::Client::from_conf(s3),
            naming,
            clock,
            region,
            queue_urls: Mutex::new(HashMap::new()),
            sent: Mutex::default(),
        }
    }

    fn table_name(&self, table: &TableDef) -> String {
        self.naming.physical(&table.name)
    }

    fn queue_name(&self, queue: &QueueDef) -> String {
        self.naming.physical(&queue.name)
    }

    fn bucket_name(&self, bucket: &BucketDef) -> String {
        self.naming.physical(&bucket.name)
    }

    fn now(&self) -> i64 {
        self.clock.now_unix()
    }
}

/// A timeout per attempt on top of the configured ones (which keep their connect timeout).
fn attempt_timeout(attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder().operation_attempt_timeout(attempt).build()
}

fn has_custom_endpoint(sdk_config: &SdkConfig) -> bool {
    let set = |variable: &str| std::env::var(variable).is_ok_and(|value| !value.is_empty());
    sdk_config.endpoint_url().is_some() || set("AWS_ENDPOINT_URL") || set("AWS_ENDPOINT_URL_S3")
}
