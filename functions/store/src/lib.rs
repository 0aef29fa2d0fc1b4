//! Tessera's storage ports and their two backends.
//!
//! Narrow ports in domain terms: an [`ItemStore`] (DynamoDB-shaped: keyed items, conditional
//! writes, range queries, transactions, TTL), a [`Queue`] (SQS-shaped: visibility timeouts, long
//! polls, dead-letter queues, FIFO groups), a [`BlobStore`] (S3-shaped, with signed GET URLs) and
//! the rate limits' [`Counters`]. Each has an AWS backend (`aws-sdk-*`) and an embedded backend
//! (one SQLite file and a local folder; the counters in memory). One conformance suite (in
//! `tests/e2e`) proves the two behave the same.

pub mod accounts;
pub mod aws;
pub mod blob;
pub mod counters;
pub mod definitions;
pub mod embedded;
pub mod error;
pub mod events;
pub mod guilds;
pub mod item;
pub mod jobs;
pub mod queue;

use std::sync::Arc;

pub use blob::{Blob, BlobEntry, BlobMeta, BlobStore, BucketDef};
pub use counters::Counters;
pub use definitions::Definitions;
pub use error::{StoreError, StoreResult};
pub use item::{
    Cmp, Condition, IndexDef, Item, ItemStore, Key, Page, Query, SortRange, TableDef, TransactionWrites, Update, Write,
};
pub use queue::{DeadLetter, OutgoingMessage, Queue, QueueCounts, QueueDef, ReceiveRequest, ReceivedMessage};

/// The ports, as shared handles: what every handler, worker and test is given.
#[derive(Clone)]
pub struct Ports {
    /// The item store.
    pub items: Arc<dyn ItemStore>,
    /// The message queues.
    pub queue: Arc<dyn Queue>,
    /// The blob store.
    pub blobs: Arc<dyn BlobStore>,
    /// The rate-limit counters.
    pub counters: Arc<dyn Counters>,
    /// Which backend serves them, for health reports and logs.
    pub backend: &'static str,
}

impl Ports {
    /// Bundles one backend that implements every port.
    pub fn from_backend<B>(backend: Arc<B>, name: &'static str) -> Self
    where
        B: ItemStore + Queue + BlobStore + Counters + 'static,
    {
        Self {
            items: backend.clone(),
            queue: backend.clone(),
            blobs: backend.clone(),
            counters: backend,
            backend: name,
        }
    }
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}
