//! The job state machine and the enums that name what a job is (capability) and how urgent it is
//! (priority), with the serde names of the spec.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// The state of a generation job, as the spec writes it (`"QUEUED"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Accepted, charged, waiting for a worker.
    Queued,
    /// Claimed by a worker and executing.
    Running,
    /// Finished with artifacts.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped at the client's request; reserved tokens refunded.
    Cancelled,
}

/// Every named move of the state machine. Each is applied as a conditional write on the state
/// it starts from, never as a read-then-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A worker takes a queued job: `QUEUED -> RUNNING`.
    Claim,
    /// A worker takes over a job whose previous worker vanished: `RUNNING -> RUNNING` with the
    /// attempt number increased.
    Reclaim,
    /// The worker finished: `RUNNING -> COMPLETED`.
    Complete,
    /// The worker (or the sweeper) gave up: `RUNNING -> FAILED`.
    Fail,
    /// The client cancelled: `QUEUED | RUNNING -> CANCELLED`.
    Cancel,
}

impl JobStatus {
    /// All states, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The spec's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Whether no transition leaves this state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The states a transition may start from.
    pub fn sources_of(transition: Transition) -> &'static [JobStatus] {
        match transition {
            Transition::Claim => &[Self::Queued],
            Transition::Reclaim | Transition::Complete | Transition::Fail => &[Self::Running],
            Transition::Cancel => &[Self::Queued, Self::Running],
        }
    }

    /// The state a transition leads to.
    pub fn target_of(transition: Transition) -> JobStatus {
        match transition {
            Transition::Claim | Transition::Reclaim => Self::Running,
            Transition::Complete => Self::Completed,
            Transition::Fail => Self::Failed,
            Transition::Cancel => Self::Cancelled,
        }
    }

    /// Applies `transition` to this state, or says why it is illegal.
    pub fn apply(self, transition: Transition) -> Result<JobStatus, DomainError> {
        let to = Self::target_of(transition);
        if Self::sources_of(transition).contains(&self) {
            Ok(to)
        } else {
            Err(DomainError::IllegalTransition { from: self, to })
        }
    }

    /// Whether any transition leads from this state to `to`.
    pub fn can_become(self, to: JobStatus) -> bool {
        self.transition_to(to).is_ok()
    }

    /// Moves to `to` if some transition allows it.
    pub fn transition_to(self, to: JobStatus) -> Result<JobStatus, DomainError> {
        const ALL: [Transition; 5] = [
            Transition::Claim,
            Transition::Reclaim,
            Transition::Complete,
            Transition::Fail,
            Transition::Cancel,
        ];
        ALL.iter()
            .filter(|&&transition| Self::target_of(transition) == to)
            .find_map(|&transition| self.apply(transition).ok())
            .ok_or(DomainError::IllegalTransition { from: self, to })
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = DomainError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or_else(|| {
                DomainError::InvalidInput(format!(
                    "unknown status '{raw}': expected one of QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED"
                ))
            })
    }
}

/// What kind of output a job produces, as the spec writes it (`"image"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Still images.
    Image,
    /// Video clips.
    Video,
    /// Text.
    Text,
    /// Audio.
    Audio,
}

impl Capability {
    /// All capabilities.
    pub const ALL: [Capability; 4] = [Self::Image, Self::Video, Self::Text, Self::Audio];

    /// The spec's name of the capability.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Text => "text",
            Self::Audio => "audio",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = DomainError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|capability| capability.as_str() == raw)
            .ok_or_else(|| {
                DomainError::InvalidInput(format!(
                    "unknown capability '{raw}': expected one of image, video, text, audio"
                ))
            })
    }
}

/// How urgently a job runs; each priority has its own queue lane. The spec shows `"normal"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Batch work; served when nothing else waits.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Served first.
    High,
}

impl Priority {
    /// All priorities, most urgent first: the order in which workers poll the lanes.
    pub const ALL: [Priority; 3] = [Self::High, Self::Normal, Self::Low];

    /// The spec's name of the priority.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = DomainError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.as_str() == raw)
            .ok_or_else(|| {
                DomainError::InvalidInput(format!("unknown priority '{raw}': expected one of low, normal, high"))
            })
    }
}

/// How many times a job may run (claims plus re-claims after a worker vanished) before it fails
/// with `WORKER_TIMEOUT`.
pub const MAX_ATTEMPTS: u32 = 3;

/// The message sent to a job's queue lane: just enough for a worker to claim the job (the job
/// item is the truth; a duplicate or stale message is harmless because claiming is conditional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    /// The job to run.
    pub job_id: crate::ids::JobId,
    /// Its capability (the lane).
    pub capability: Capability,
    /// Its priority (the lane).
    pub priority: Priority,
}

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::*;

    #[test]
    fn claim_moves_a_queued_job_to_running() {
        assert_eq!(Queued.apply(Transition::Claim), Ok(Running));
    }

    #[test]
    fn reclaim_keeps_a_running_job_running() {
        assert_eq!(Running.apply(Transition::Reclaim), Ok(Running));
    }

    #[test]
    fn complete_moves_a_running_job_to_completed() {
        assert_eq!(Running.apply(Transition::Complete), Ok(Completed));
    }

    #[test]
    fn fail_moves_a_running_job_to_failed() {
        assert_eq!(Running.apply(Transition::Fail), Ok(Failed));
    }

    #[test]
    fn cancel_moves_a_queued_job_to_cancelled() {
        assert_eq!(Queued.apply(Transition::Cancel), Ok(Cancelled));
    }

    #[test]
    fn cancel_moves_a_running_job_to_cancelled() {
        assert_eq!(Running.apply(Transition::Cancel), Ok(Cancelled));
    }

    #[test]
    fn exactly_the_design_transitions_are_legal() {
        let legal = [
            (Queued, Running),
            (Running, Running),
            (Running, Completed),
            (Running, Failed),
            (Queued, Cancelled),
            (Running, Cancelled),
        ];
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                assert_eq!(from.can_become(to), legal.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    macro_rules! illegal {
        ($($name:ident: $from:ident -> $to:ident;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(
                    $from.transition_to($to),
                    Err(DomainError::IllegalTransition { from: $from, to: $to })
                );
            }
        )*};
    }

    illegal! {
        queued_cannot_stay_queued: Queued -> Queued;
        queued_cannot_complete_without_running: Queued -> Completed;
        queued_cannot_fail_without_running: Queued -> Failed;
        running_cannot_go_back_to_queued: Running -> Queued;
        completed_cannot_be_requeued: Completed -> Queued;
        completed_cannot_run_again: Completed -> Running;
        completed_cannot_complete_twice: Completed -> Completed;
        completed_cannot_fail: Completed -> Failed;
        completed_cannot_be_cancelled: Completed -> Cancelled;
        failed_cannot_be_requeued: Failed -> Queued;
        failed_cannot_run_again: Failed -> Running;
        failed_cannot_complete: Failed -> Completed;
        failed_cannot_fail_twice: Failed -> Failed;
        failed_cannot_be_cancelled: Failed -> Cancelled;
        cancelled_cannot_be_requeued: Cancelled -> Queued;
        cancelled_cannot_run: Cancelled -> Running;
        cancelled_cannot_complete: Cancelled -> Completed;
        cancelled_cannot_fail: Cancelled -> Failed;
        cancelled_cannot_be_cancelled_twice: Cancelled -> Cancelled;
    }

    #[test]
    fn named_transitions_refuse_the_wrong_source_state() {
        assert!(Running.apply(Transition::Claim).is_err());
        assert!(Queued.apply(Transition::Reclaim).is_err());
        assert!(Queued.apply(Transition::Complete).is_err());
        assert!(Queued.apply(Transition::Fail).is_err());
        for done in [Completed, Failed, Cancelled] {
            assert!(done.is_final());
            assert!(done.apply(Transition::Cancel).is_err());
        }
    }

    #[test]
    fn serde_names_match_the_spec() {
        let json = serde_json::to_string(&(Queued, Capability::Image, Priority::Normal)).expect("serialize");
        assert_eq!(json, r#"["QUEUED","image","normal"]"#);
        for status in JobStatus::ALL {
            let round: JobStatus = serde_json::from_value(serde_json::json!(status.as_str())).expect("status");
            assert_eq!(round, status);
        }
        for capability in Capability::ALL {
            assert_eq!(serde_json::to_value(capability).expect("cap"), capability.as_str());
        }
        for priority in Priority::ALL {
            assert_eq!(serde_json::to_value(priority).expect("prio"), priority.as_str());
        }
        assert!(serde_json::from_str::<Capability>("\"Image\"").is_err());
        assert!(serde_json::from_str::<JobStatus>("\"queued\"").is_err());
    }

    #[test]
    fn from_str_rejects_unknown_names_with_the_accepted_list() {
        let err = "sound".parse::<Capability>().expect_err("unknown");
        assert!(err.to_string().contains("image, video, text, audio"));
        assert_eq!("RUNNING".parse::<JobStatus>(), Ok(Running));
        assert_eq!("high".parse::<Priority>(), Ok(Priority::High));
    }
}
