//! Prefixed identifiers (`job_` followed by 12 lowercase alphanumerics, as in the spec) and the
//! injected source of their random part.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DomainError;

/// Length of the random part of every id.
pub const ID_SUFFIX_LEN: usize = 12;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Where the random part of new ids comes from: random in production, a counter in tests.
pub trait IdSource: Send + Sync + fmt::Debug {
    /// The next suffix: exactly [`ID_SUFFIX_LEN`] lowercase ASCII letters or digits.
    fn next_suffix(&self) -> String;
}

/// Suffixes from the thread-local CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_suffix(&self) -> String {
        let mut rng = rand::rng();
        (0..ID_SUFFIX_LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    }
}

/// Deterministic suffixes `000000000001`, `000000000002`, ... for tests.
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: Mutex<u64>,
}

impl IdSource for SequentialIds {
    fn next_suffix(&self) -> String {
        let mut next = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *next += 1;
        format!("{:0width$}", *next, width = ID_SUFFIX_LEN)
    }
}

/// A random (version 4) UUID in its usual text form, e.g. for ComfyUI prompt ids.
pub fn random_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn is_valid_suffix(suffix: &str) -> bool {
    suffix.len() == ID_SUFFIX_LEN && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id whose random part comes from `ids`.
            pub fn generate(ids: &dyn IdSource) -> Self {
                Self(format!("{}{}", Self::PREFIX, ids.next_suffix()))
            }

            /// Parses and validates an id given by a client.
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                match raw.strip_prefix(Self::PREFIX) {
                    Some(suffix) if is_valid_suffix(suffix) => Ok(Self(raw.to_owned())),
                    _ => Err(DomainError::InvalidInput(format!(
                        "'{raw}' is not a valid id: expected '{}' followed by {ID_SUFFIX_LEN} lowercase letters or digits",
                        Self::PREFIX
                    ))),
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Self::parse(raw)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A generation job: `job_` followed by 12 lowercase alphanumerics.
    JobId,
    "job_"
);
prefixed_id!(
    /// One output file of a job: `artifact_` followed by 12 lowercase alphanumerics.
    ArtifactId,
    "artifact_"
);
prefixed_id!(
    /// A tenant (an account: the organisation that holds a plan): `ten_` + 12 alphanumerics.
    TenantId,
    "ten_"
);
prefixed_id!(
    /// A user: `usr_` followed by 12 lowercase alphanumerics.
    UserId,
    "usr_"
);
prefixed_id!(
    /// An API key: `key_` followed by the key's 12-character public prefix.
    ApiKeyId,
    "key_"
);
prefixed_id!(
    /// A job event: `evt_` followed by the random part of its job's id (a job has one final
    /// event, so the id is stable across retries and duplicates).
    EventId,
    "evt_"
);
prefixed_id!(
    /// One webhook delivery of an event (a redelivery is a new one): `dlv_` + 12 alphanumerics.
    DeliveryId,
    "dlv_"
);

impl EventId {
    /// The final event of `job`.
    pub fn for_job(job: &JobId) -> Self {
        Self(format!("{}{}", Self::PREFIX, &job.as_str()[JobId::PREFIX.len()..]))
    }
}

impl DeliveryId {
    /// The first delivery of `event` (later ones, from redelivery, are random).
    pub fn first_of(event: &EventId) -> Self {
        Self(format!("{}{}", Self::PREFIX, &event.as_str()[EventId::PREFIX.len()..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuids_are_version_4_and_differ() {
        let (a, b) = (random_uuid(), random_uuid());
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|part| part.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')), "{a}");
    }

    #[test]
    fn random_job_ids_match_the_spec_shape_and_differ() {
        let a = JobId::generate(&RandomIds);
        let b = JobId::generate(&RandomIds);
        assert_ne!(a, b);
        for id in [&a, &b] {
            let suffix = id.as_str().strip_prefix("job_").expect("prefix");
            assert_eq!(suffix.len(), 12);
            assert!(is_valid_suffix(suffix), "{id}");
        }
    }

    #[test]
    fn sequential_ids_are_deterministic() {
        let ids = SequentialIds::default();
        assert_eq!(JobId::generate(&ids).as_str(), "job_000000000001");
        assert_eq!(ArtifactId::generate(&ids).as_str(), "artifact_000000000002");
    }

    #[test]
    fn parse_accepts_the_spec_example() {
        assert_eq!(
            JobId::parse("job_abc123def456").map(|id| id.to_string()),
            Ok("job_abc123def456".to_owned())
        );
    }

    #[test]
    fn parse_rejects_malformed_ids() {
        for bad in [
            "",
            "job_",
            "abc123def456",
            "job_abc123def45",
            "job_abc123def4567",
            "job_ABC123DEF456",
            "job_abc123def45_",
            "artifact_abc123def456",
            "job_abc123déf45",
        ] {
            assert!(
                matches!(JobId::parse(bad), Err(DomainError::InvalidInput(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let id: JobId = serde_json::from_str("\"job_abc123def456\"").expect("valid");
        assert_eq!(serde_json::to_string(&id).expect("serialize"), "\"job_abc123def456\"");
        assert!(serde_json::from_str::<JobId>("\"job_nope\"").is_err());
    }
}
