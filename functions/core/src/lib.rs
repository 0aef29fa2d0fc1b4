//! Tessera's domain, with no I/O: prefixed ids and the id source, the injected clock, the domain
//! error, the job state machine, the account model (tenants, users, roles, scopes, plans, principals),
//! and the wire enums (capability, priority) shared by every crate.

pub mod account;
pub mod catalog;
pub mod clock;
pub mod error;
pub mod event;
pub mod ids;
pub mod job;
pub mod request;

pub use account::{Email, PlanTier, Principal, Role, Scope};
pub use catalog::{Catalog, ModelSpec, PlanSpec, Resolution, Tokens};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{DomainError, DomainResult};
pub use event::{EventKind, Frontend, NotifyEvent, NotifyMessage};
pub use ids::{ApiKeyId, ArtifactId, DeliveryId, EventId, IdSource, JobId, RandomIds, SequentialIds, TenantId, UserId};
pub use job::{Capability, JobMessage, JobStatus, Priority, Transition};
