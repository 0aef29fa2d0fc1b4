//! Tessera's domain, with no I/O: prefixed ids and the id source, the injected clock, the domain
//! error, the job state machine, and the wire enums (capability, priority) shared by every crate.

pub mod clock;
pub mod error;
pub mod ids;
pub mod job;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{DomainError, DomainResult};
pub use ids::{ArtifactId, IdSource, JobId, RandomIds, SequentialIds};
pub use job::{Capability, JobStatus, Priority, Transition};
