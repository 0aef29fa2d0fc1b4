//! The catalog: plans, models, prices, limits and the content policy, from one seed file
//! (`functions/core/seed/catalog.json`) compiled into every binary. Tokens are integers in
//! thousandths ([`Tokens`]); the API renders them as the decimals the spec shows.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize, Serializer};

use crate::account::PlanTier;
use crate::error::DomainError;
use crate::job::Capability;

/// The catalog installed at start, if any.
static INSTALLED: OnceLock<Catalog> = OnceLock::new();

/// The seed file, as shipped.
pub const SEED: &str = include_str!("../seed/catalog.json");

/// An amount of tokens, in thousandths of a token (`1000` is `1.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
pub struct Tokens(pub u64);

impl Tokens {
    /// Thousandths in one token.
    pub const SCALE: u64 = 1000;

    /// Whole tokens.
    pub const fn whole(tokens: u64) -> Self {
        Self(tokens * Self::SCALE)
    }

    /// The amount as the spec writes it: `1.0`, `0.5`.
    pub fn as_decimal(self) -> f64 {
        self.0 as f64 / Self::SCALE as f64
    }

    /// From a decimal of the seed file, rounded to the thousandth.
    fn from_decimal(decimal: f64) -> Self {
        Self((decimal * Self::SCALE as f64).round().max(0.0) as u64)
    }
}

impl Serialize for Tokens {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_decimal())
    }
}

impl fmt::Display for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_decimal())
    }
}

/// Width and height in pixels, written `WxH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

impl Resolution {
    /// Parses `WxH` (both sides 8 to 8192).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::InvalidInput(format!("'{raw}' is not WIDTHxHEIGHT, e.g. 1024x1024"));
        let (width, height) = raw.split_once('x').ok_or_else(invalid)?;
        let side = |text: &str| -> Result<u32, DomainError> {
            let value: u32 = text.parse().map_err(|_| invalid())?;
            if !(8..=8192).contains(&value) || text.starts_with('+') || text.starts_with('0') {
                return Err(invalid());
            }
            Ok(value)
        };
        Ok(Self {
            width: side(width)?,
            height: side(height)?,
        })
    }

    /// The number of pixels.
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl Serialize for Resolution {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Resolution {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A plan and its limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlanSpec {
    /// `free`, `starter`, `pro`.
    pub tier: PlanTier,
    /// Display name.
    pub name: String,
    /// Tokens per UTC day.
    pub daily_token_limit: u64,
    /// Queue priority, 0 to 2.
    pub priority: u8,
    /// Requests per minute on `/api/v1`.
    pub requests_per_minute: u32,
    /// Jobs queued or running at once.
    pub concurrent_jobs: u32,
    /// Whether jobs may ask for `high` priority.
    pub high_priority: bool,
}

/// A model as `GET /api/v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The id clients name, e.g. `sdxl`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version, e.g. `1.0`.
    pub version: String,
    /// What it produces.
    pub capability: Capability,
    /// One line about it.
    pub description: String,
    /// The largest output, for image and video models.
    pub max_resolution: Option<Resolution>,
    /// The plans that may use it.
    pub available_on_plan: Vec<PlanTier>,
    /// Typical run time of one job on one worker.
    pub estimated_time_seconds: u32,
    /// Price factor against the capability's base price (0 makes the model free).
    pub cost_multiplier: f64,
    /// The worker's workflow id, when not `txt2img_<id>` (e.g. `canary`).
    #[serde(default, skip_serializing)]
    pub workflow: Option<String>,
}

impl ModelSpec {
    /// The id of the workflow the worker runs for this model: its own `workflow`, or
    /// `txt2img_<id>` (`txt2vid_`, `txt2txt_`, `txt2audio_` by capability; `-` becomes `_`).
    pub fn workflow_id(&self) -> String {
        let kind = match self.capability {
            Capability::Image => "txt2img",
            Capability::Video => "txt2vid",
            Capability::Text => "txt2txt",
            Capability::Audio => "txt2audio",
        };
        self.workflow
            .clone()
            .unwrap_or_else(|| format!("{kind}_{}", self.id.replace('-', "_")))
    }

    /// `<id>-<version>`, the name workers and results use (`sdxl-1.0`).
    pub fn versioned_id(&self) -> String {
        format!("{}-{}", self.id, self.version)
    }
}

/// A content-policy rule: prompts containing any of its terms are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PolicyRule {
    /// The rule's id.
    pub id: String,
    /// Lowercase phrases that break the rule.
    pub terms: Vec<String>,
    /// Why, as the client is told.
    pub message: String,
}

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Limits {
    /// Longest prompt, in characters.
    pub max_prompt_chars: usize,
    /// Longest negative prompt, in characters.
    pub max_negative_prompt_chars: usize,
    /// Most sampling steps.
    pub max_steps: u32,
}

/// The reference job the base prices are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Reference {
    /// Pixels of the reference output (1024×1024).
    pub pixels: u64,
    /// Steps of the reference job (20).
    pub steps: u32,
}

/// Everything the seed file holds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Catalog {
    /// The plans.
    pub plans: Vec<PlanSpec>,
    /// Price of the reference job of each capability, in tokens.
    pub base_price_tokens: BTreeMap<Capability, f64>,
    /// The reference job.
    pub reference: Reference,
    /// Request limits.
    pub limits: Limits,
    /// The models.
    pub models: Vec<ModelSpec>,
    /// The content policy.
    pub content_policy: Vec<PolicyRule>,
}

impl Catalog {
    /// Reads and checks a catalog file (`TESSERA_CATALOG`); the error names the file.
    pub fn load(path: &std::path::Path) -> Result<Self, DomainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| DomainError::InvalidInput(format!("TESSERA_CATALOG={}: {error}", path.display())))?;
        Self::parse(&text)
            .map_err(|error| DomainError::InvalidInput(format!("TESSERA_CATALOG={}: {error}", path.display())))
    }

    /// The catalog of the shipped seed file.
    pub fn builtin() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| Self::parse(SEED).expect("the shipped catalog seed is valid"))
    }

    /// The catalog this process runs on: the one [`Catalog::install`]ed at start (an operator's
    /// own plans, models and policy, `TESSERA_CATALOG`), or the shipped one.
    pub fn active() -> &'static Catalog {
        INSTALLED.get().unwrap_or_else(|| Self::builtin())
    }

    /// Makes `catalog` the active one, once per process, before anything reads it; `false`
    /// when one was installed already.
    pub fn install(catalog: Catalog) -> bool {
        INSTALLED.set(catalog).is_ok()
    }

    /// Parses and checks a seed file.
    pub fn parse(json: &str) -> Result<Self, DomainError> {
        let catalog: Catalog =
            serde_json::from_str(json).map_err(|error| DomainError::InvalidInput(format!("catalog seed: {error}")))?;
        for tier in [PlanTier::Free, PlanTier::Starter, PlanTier::Pro] {
            if !catalog.plans.iter().any(|plan| plan.tier == tier) {
                return Err(DomainError::InvalidInput(format!("catalog seed: no plan '{tier:?}'")));
            }
        }
        for model in &catalog.models {
            let id_ok = (1..=24).contains(&model.id.len())
                && model
                    .id
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
            if !id_ok {
                return Err(DomainError::InvalidInput(format!(
                    "catalog seed: model id '{}' must be 1 to 24 lowercase letters, digits or '-' (it names queues)",
                    model.id
                )));
            }
            if !catalog.base_price_tokens.contains_key(&model.capability) {
                return Err(DomainError::InvalidInput(format!(
                    "catalog seed: no base price for {}",
                    model.capability
                )));
            }
        }
        Ok(catalog)
    }

    /// The plan of `tier`.
    pub fn plan(&self, tier: PlanTier) -> &PlanSpec {
        self.plans
            .iter()
            .find(|plan| plan.tier == tier)
            .unwrap_or(&self.plans[0])
    }

    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|model| model.id == id)
    }

    /// The models of one capability, or all.
    pub fn models_for(&self, capability: Option<Capability>) -> Vec<&ModelSpec> {
        self.models
            .iter()
            .filter(|model| capability.is_none_or(|wanted| model.capability == wanted))
            .collect()
    }

    /// The price of a job: the capability's base price × the model's multiplier × (pixels ÷
    /// 1024²) × (steps ÷ 20), rounded up to the thousandth, at least 0.001 (0 for a model whose
    /// multiplier is 0, such as the diagnostic `canary`). Capabilities
    /// without a resolution (text, audio) pay the base price × the multiplier.
    pub fn price(&self, model: &ModelSpec, resolution: Option<Resolution>, steps: u32) -> Tokens {
        if model.cost_multiplier == 0.0 {
            return Tokens(0);
        }
        let base = self.base_price_tokens.get(&model.capability).copied().unwrap_or(1.0);
        let unit = Tokens::from_decimal(base * model.cost_multiplier).0 as u128;
        let cost = match resolution {
            Some(resolution) => {
                let numerator = unit * u128::from(resolution.pixels()) * u128::from(steps);
                let denominator = u128::from(self.reference.pixels) * u128::from(self.reference.steps);
                numerator.div_ceil(denominator.max(1))
            }
            None => unit,
        };
        Tokens(u64::try_from(cost).unwrap_or(u64::MAX).max(1))
    }

    /// The first content-policy rule `prompt` breaks, if any.
    pub fn policy_violation(&self, prompt: &str) -> Option<&PolicyRule> {
        let lowered = prompt.to_lowercase();
        self.content_policy
            .iter()
            .find(|rule| rule.terms.iter().any(|term| lowered.contains(term.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_examples_price_as_shown() {
        let catalog = Catalog::builtin();
        let square = Resolution::parse("1024x1024").ok();
        let sdxl = catalog.model("sdxl").expect("sdxl");
        assert_eq!(catalog.price(sdxl, square, 20), Tokens(1000));
        let flux = catalog.model("flux-schnell").expect("flux");
        assert_eq!(catalog.price(flux, square, 20), Tokens(500));
        assert_eq!(
            catalog.price(sdxl, Resolution::parse("2048x2048").ok(), 40),
            Tokens(8000)
        );
        assert_eq!(
            catalog.price(sdxl, Resolution::parse("8x8").ok(), 1),
            Tokens(1),
            "never free"
        );
        assert_eq!(serde_json::to_string(&Tokens(1000)).expect("json"), "1.0");
    }

    #[test]
    fn plans_follow_the_spec_table() {
        let catalog = Catalog::builtin();
        let pro = catalog.plan(PlanTier::Pro);
        assert_eq!(
            (pro.name.as_str(), pro.daily_token_limit, pro.priority),
            ("Pro", 300, 2)
        );
        let limits: Vec<_> = catalog
            .plans
            .iter()
            .map(|plan| (plan.requests_per_minute, plan.concurrent_jobs))
            .collect();
        assert_eq!(limits, vec![(5, 1), (10, 2), (30, 5)]);
    }

    #[test]
    fn resolutions_parse_strictly() {
        assert_eq!(
            Resolution::parse("1024x768").map(|r| r.to_string()),
            Ok("1024x768".into())
        );
        for bad in [
            "1024",
            "1024x",
            "x1024",
            "1024X1024",
            "0x8",
            "+8x8",
            "08x8",
            "99999x8",
            "-8x8",
        ] {
            assert!(Resolution::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_content_policy_matches_terms_case_insensitively() {
        let catalog = Catalog::builtin();
        assert_eq!(
            catalog
                .policy_violation("A Deepfake Nude of x")
                .map(|rule| rule.id.as_str()),
            Some("real-person-sexual")
        );
        assert!(catalog.policy_violation("a beautiful sunset over mountains").is_none());
    }
}
