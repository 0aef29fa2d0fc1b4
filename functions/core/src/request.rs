//! `POST /api/v1/jobs` bodies, validated strictly into a [`JobRequest`]: every refusal names the
//! field it is about, so that the API answers 400 `INVALID_PARAMS` with useful `details`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::catalog::{Catalog, ModelSpec, PlanSpec, Resolution, Tokens};
use crate::job::{Capability, Priority};

/// The sampling steps when a job gives none.
pub const DEFAULT_STEPS: u32 = 20;
/// The longest webhook URL accepted.
const MAX_URL_CHARS: usize = 2048;

/// A job request that passed every check, with its price.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    /// What it produces.
    pub capability: Capability,
    /// The model that runs it.
    pub model: ModelSpec,
    /// The prompt.
    pub prompt: String,
    /// What to avoid, if given.
    pub negative_prompt: Option<String>,
    /// Output size (image and video only).
    pub resolution: Option<Resolution>,
    /// Sampling steps.
    pub steps: u32,
    /// The seed: the client's, or a random one (always reported back).
    pub seed: u64,
    /// The queue lane.
    pub priority: Priority,
    /// Where to POST the final state, if anywhere.
    pub webhook_url: Option<String>,
    /// The price, reserved at creation.
    pub cost: Tokens,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A field is missing, of the wrong type, or out of range: 400 `INVALID_PARAMS`.
    #[error("{field}: {message}")]
    Invalid {
        /// The field's path, e.g. `params.steps`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No such model for the capability: 404 `MODEL_NOT_FOUND`.
    #[error("model '{0}' does not exist for this capability")]
    ModelNotFound(String),
    /// The model exists but the tenant's plan does not include it: 403.
    #[error("model '{model}' is not available on the {plan} plan; available on: {available}")]
    NotOnPlan {
        /// The model.
        model: String,
        /// The tenant's plan.
        plan: String,
        /// The plans that have it.
        available: String,
    },
    /// The prompt breaks the content policy: 400 `INVALID_PROMPT`.
    #[error("{0}")]
    Prompt(String),
}

fn invalid(field: &str, message: impl Into<String>) -> RequestError {
    RequestError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// What the deployment allows for webhook URLs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookRules {
    /// Accept `http://` URLs (local development).
    pub allow_http: bool,
    /// Accept loopback and private-network hosts.
    pub allow_private: bool,
}

/// Validates a request body for a tenant on `plan`; `random_seed` is used when none is given.
pub fn parse_job_request(
    body: &Value,
    plan: &PlanSpec,
    catalog: &Catalog,
    webhooks: WebhookRules,
    random_seed: u64,
) -> Result<JobRequest, RequestError> {
    let body = body
        .as_object()
        .ok_or_else(|| invalid("body", "expected a JSON object"))?;
    only_known(body, "", &["capability", "params", "priority", "webhook_url"])?;
    let capability = match body.get("capability") {
        Some(Value::String(raw)) => raw
            .parse::<Capability>()
            .map_err(|error| invalid("capability", error.to_string()))?,
        Some(_) => return Err(invalid("capability", "expected a string: image, video, text or audio")),
        None => return Err(invalid("capability", "is required: image, video, text or audio")),
    };
    let params = match body.get("params") {
        Some(Value::Object(params)) => params,
        Some(_) => return Err(invalid("params", "expected an object")),
        None => return Err(invalid("params", "is required")),
    };
    only_known(
        params,
        "params.",
        &["prompt", "negative_prompt", "resolution", "steps", "model", "seed"],
    )?;
    let model = model(params, capability, plan, catalog)?;
    let prompt = text(params, "prompt", catalog.limits.max_prompt_chars)?
        .ok_or_else(|| invalid("params.prompt", "is required"))?;
    let negative_prompt = text(params, "negative_prompt", catalog.limits.max_negative_prompt_chars)?;
    for checked in std::iter::once(&prompt).chain(negative_prompt.as_ref()) {
        if let Some(rule) = catalog.policy_violation(checked) {
            return Err(RequestError::Prompt(format!(
                "the prompt violates the content policy: {}",
                rule.message
            )));
        }
    }
    let resolution = resolution(params, &model)?;
    let steps = match params.get("steps") {
        None | Some(Value::Null) => DEFAULT_STEPS,
        Some(value) => value
            .as_u64()
            .filter(|steps| (1..=u64::from(catalog.limits.max_steps)).contains(steps))
            .map(|steps| steps as u32)
            .ok_or_else(|| {
                invalid(
                    "params.steps",
                    format!("expected an integer from 1 to {}", catalog.limits.max_steps),
                )
            })?,
    };
    let seed = match params.get("seed") {
        None | Some(Value::Null) => random_seed,
        Some(value) => value
            .as_u64()
            .ok_or_else(|| invalid("params.seed", "expected an integer from 0 to 18446744073709551615"))?,
    };
    let priority = match body.get("priority") {
        None | Some(Value::Null) => Priority::Normal,
        Some(Value::String(raw)) => raw
            .parse::<Priority>()
            .map_err(|error| invalid("priority", error.to_string()))?,
        Some(_) => return Err(invalid("priority", "expected a string: low, normal or high")),
    };
    if priority == Priority::High && !plan.high_priority {
        return Err(invalid(
            "priority",
            format!("'high' is not available on the {} plan", plan.name),
        ));
    }
    let webhook_url = match body.get("webhook_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => {
            Some(check_webhook_url(url, webhooks).map_err(|message| invalid("webhook_url", message))?)
        }
        Some(_) => return Err(invalid("webhook_url", "expected a string")),
    };
    let cost = catalog.price(&model, resolution, steps);
    Ok(JobRequest {
        capability,
        model,
        prompt,
        negative_prompt,
        resolution,
        steps,
        seed,
        priority,
        webhook_url,
        cost,
    })
}

fn only_known(object: &Map<String, Value>, prefix: &str, known: &[&str]) -> Result<(), RequestError> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(invalid(
            &format!("{prefix}{unknown}"),
            format!("unknown field; expected one of: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn model(
    params: &Map<String, Value>,
    capability: Capability,
    plan: &PlanSpec,
    catalog: &Catalog,
) -> Result<ModelSpec, RequestError> {
    let model = match params.get("model") {
        None | Some(Value::Null) => catalog
            .models_for(Some(capability))
            .into_iter()
            .find(|model| model.available_on_plan.contains(&plan.tier))
            .ok_or_else(|| RequestError::ModelNotFound(format!("(any {capability} model on your plan)")))?,
        Some(Value::String(id)) => catalog
            .model(id)
            .filter(|model| model.capability == capability)
            .ok_or_else(|| RequestError::ModelNotFound(id.clone()))?,
        Some(_) => return Err(invalid("params.model", "expected a string")),
    };
    if !model.available_on_plan.contains(&plan.tier) {
        let available: Vec<_> = model.available_on_plan.iter().map(|tier| tier.as_str()).collect();
        return Err(RequestError::NotOnPlan {
            model: model.id.clone(),
            plan: plan.name.clone(),
            available: available.join(", "),
        });
    }
    Ok(model.clone())
}

fn text(params: &Map<String, Value>, name: &str, max_chars: usize) -> Result<Option<String>, RequestError> {
    let field = format!("params.{name}");
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Err(invalid(&field, "must not be empty")),
        Some(Value::String(text)) if text.chars().count() > max_chars => {
            Err(invalid(&field, format!("must be at most {max_chars} characters")))
        }
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(&field, "expected a string")),
    }
}

fn resolution(params: &Map<String, Value>, model: &ModelSpec) -> Result<Option<Resolution>, RequestError> {
    let field = "params.resolution";
    let Some(max) = model.max_resolution else {
        return match params.get("resolution") {
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(invalid(field, format!("is not used by {} models", model.capability))),
        };
    };
    let resolution = match params.get("resolution") {
        None | Some(Value::Null) => Resolution {
            width: max.width.min(1024),
            height: max.height.min(1024),
        },
        Some(Value::String(raw)) => Resolution::parse(raw).map_err(|error| invalid(field, error.to_string()))?,
        Some(_) => return Err(invalid(field, "expected a string WIDTHxHEIGHT")),
    };
    if resolution.width % 8 != 0 || resolution.height % 8 != 0 {
        return Err(invalid(field, "both sides must be multiples of 8"));
    }
    if resolution.width > max.width || resolution.height > max.height {
        return Err(invalid(field, format!("exceeds the model's max_resolution {max}")));
    }
    Ok(Some(resolution))
}

/// Checks a webhook URL: https (http only when allowed), a host, and no loopback or private
/// address unless allowed. Answers the URL as given.
pub fn check_webhook_url(raw: &str, rules: WebhookRules) -> Result<String, String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let url = url::Url::parse(raw).map_err(|error| format!("is not a valid URL: {error}"))?;
    match url.scheme() {
        "https" => {}
        "http" if rules.allow_http => {}
        _ => return Err("must be an https:// URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let private = match url.host() {
        None => return Err("must have a host".into()),
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            domain == "localhost" || domain.ends_with(".localhost") || domain.ends_with(".internal")
        }
        Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
    };
    if private && !rules.allow_private {
        return Err("must not point at a loopback or private network address".into());
    }
    Ok(raw.to_owned())
}

/// Whether an address is one a webhook must not reach: exactly when [`forbidden_class`] names a
/// class for it.
pub fn is_private(ip: IpAddr) -> bool {
    forbidden_class(ip).is_some()
}

/// The class of an address that outgoing requests must not reach (loopback, private, link-local,
/// cloud metadata, multicast, unique-local, ...), or `None` for a public address. IPv6 forms that
/// carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16`) answer the class of
/// the IPv4 address they carry.
pub fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => forbidden_v4(ip),
        IpAddr::V6(ip) => forbidden_v6(ip),
    }
}

/// [`forbidden_class`] for IPv4.
fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let class = match (a, b, c, d) {
        // Checked before link-local, which contains it.
        (169, 254, 169, 254) => "cloud metadata",
        (0, 0, 0, 0) => "unspecified",
        (0, ..) => "this network",
        (127, ..) => "loopback",
        (10, ..) | (192, 168, ..) => "private",
        (172, 16..=31, ..) => "private",
        (100, 64..=127, ..) => "shared address space",
        (169, 254, ..) => "link-local",
        // IETF protocol assignments (RFC 6890), e.g. 192.0.0.192, an older metadata address.
        (192, 0, 0, _) => "reserved",
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => "documentation",
        (198, 18..=19, ..) => "benchmarking",
        (224..=239, ..) => "multicast",
        (255, 255, 255, 255) => "broadcast",
        (240..=255, ..) => "reserved",
        _ => return None,
    };
    Some(class)
}

/// [`forbidden_class`] for IPv6.
fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    let s = ip.segments();
    let class = match s {
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => "cloud metadata",
        [first, ..] if first & 0xff00 == 0xff00 => "multicast",
        [first, ..] if first & 0xffc0 == 0xfe80 => "link-local",
        [first, ..] if first & 0xffc0 == 0xfec0 => "site-local",
        [first, ..] if first & 0xfe00 == 0xfc00 => "unique-local",
        [0x2001, 0x0db8, ..] => "documentation",
        [first, ..] if first & 0xfff0 == 0x3ff0 => "documentation",
        [0x2001, 0x0002, 0, ..] => "benchmarking",
        // The local-use NAT64 prefix (RFC 8215): translates into some private network.
        [0x0064, 0xff9b, 0x0001, ..] => "private",
        // Discard-only (RFC 6666).
        [0x0100, 0, 0, 0, ..] => "reserved",
        _ => return None,
    };
    Some(class)
}

/// The IPv4 address an IPv6 address carries, in the forms that reach it: IPv4-mapped,
/// IPv4-translated, IPv4-compatible (except `::` and `::1`), NAT64 and 6to4.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(low(hi, lo)),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::account::PlanTier;

    fn parse(body: Value, tier: PlanTier) -> Result<JobRequest, RequestError> {
        let catalog = Catalog::builtin();
        parse_job_request(&body, catalog.plan(tier), catalog, WebhookRules::default(), 7)
    }

    fn field_of(result: Result<JobRequest, RequestError>) -> String {
        match result {
            Err(RequestError::Invalid { field, .. }) => field,
            other => panic!("expected INVALID_PARAMS, got {other:?}"),
        }
    }

    #[test]
    fn the_spec_example_is_accepted_and_priced() {
        let job = parse(
            json!({
                "capability": "image",
                "params": {"prompt": "a beautiful sunset over mountains", "negative_prompt": "ugly, blurry",
                           "resolution": "1024x1024", "steps": 20, "model": "sdxl", "seed": 42},
                "priority": "normal",
                "webhook_url": "https://your-app.com/webhook"
            }),
            PlanTier::Free,
        )
        .expect("valid");
        assert_eq!((job.seed, job.steps, job.cost), (42, 20, Tokens(1000)));
        let defaults = parse(
            json!({"capability": "image", "params": {"prompt": "x"}}),
            PlanTier::Free,
        )
        .expect("valid");
        assert_eq!(
            (defaults.seed, defaults.model.id.as_str(), defaults.priority),
            (7, "sdxl", Priority::Normal)
        );
    }

    #[test]
    fn each_refusal_names_its_field() {
        let base = |params: Value| json!({"capability": "image", "params": params});
        let cases = [
            (json!({"params": {"prompt": "x"}}), "capability"),
            (json!({"capability": "smell", "params": {"prompt": "x"}}), "capability"),
            (json!({"capability": "image"}), "params"),
            (base(json!({})), "params.prompt"),
            (base(json!({"prompt": 3})), "params.prompt"),
            (base(json!({"prompt": "x".repeat(2001)})), "params.prompt"),
            (
                base(json!({"prompt": "x", "resolution": "1004x1000"})),
                "params.resolution",
            ),
            (
                base(json!({"prompt": "x", "resolution": "4096x4096"})),
                "params.resolution",
            ),
            (base(json!({"prompt": "x", "resolution": "big"})), "params.resolution"),
            (base(json!({"prompt": "x", "steps": 0})), "params.steps"),
            (base(json!({"prompt": "x", "steps": 151})), "params.steps"),
            (base(json!({"prompt": "x", "steps": 2.5})), "params.steps"),
            (base(json!({"prompt": "x", "seed": -1})), "params.seed"),
            (base(json!({"prompt": "x", "colour": "red"})), "params.colour"),
            (
                json!({"capability": "image", "params": {"prompt": "x"}, "priority": "urgent"}),
                "priority",
            ),
            (
                json!({"capability": "image", "params": {"prompt": "x"}, "priority": "high"}),
                "priority",
            ),
            (
                json!({"capability": "image", "params": {"prompt": "x"}, "webhook_url": "http://a.com/h"}),
                "webhook_url",
            ),
            (
                json!({"capability": "image", "params": {"prompt": "x"}, "webhook_url": "https://127.0.0.1/h"}),
                "webhook_url",
            ),
            (
                json!({"capability": "image", "params": {"prompt": "x"}, "webhook_url": "https://10.1.2.3/h"}),
                "webhook_url",
            ),
            (
                json!({"capability": "image", "params": {"prompt": "x"}, "extra": 1}),
                "extra",
            ),
            (json!([1, 2]), "body"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(parse(body.clone(), PlanTier::Free)), field, "{body}");
        }
        let seed = parse(base(json!({"prompt": "x", "seed": u64::MAX})), PlanTier::Free).expect("max seed");
        assert_eq!(seed.seed, u64::MAX);
    }

    #[test]
    fn models_are_checked_for_existence_capability_and_plan() {
        let body = |model: &str| json!({"capability": "image", "params": {"prompt": "x", "model": model}});
        assert_eq!(
            parse(body("nope"), PlanTier::Pro),
            Err(RequestError::ModelNotFound("nope".into()))
        );
        assert_eq!(
            parse(body("svd"), PlanTier::Pro),
            Err(RequestError::ModelNotFound("svd".into()))
        );
        assert!(matches!(
            parse(body("flux-schnell"), PlanTier::Free),
            Err(RequestError::NotOnPlan { .. })
        ));
        assert_eq!(
            parse(body("flux-schnell"), PlanTier::Pro).expect("pro").cost,
            Tokens(500)
        );
    }

    #[test]
    fn policy_breaking_prompts_are_refused() {
        let body = json!({"capability": "image", "params": {"prompt": "terrorist propaganda poster"}});
        assert!(matches!(parse(body, PlanTier::Free), Err(RequestError::Prompt(_))));
    }

    #[test]
    fn webhook_rules_can_open_http_and_private_hosts() {
        let open = WebhookRules {
            allow_http: true,
            allow_private: true,
        };
        assert!(check_webhook_url("http://127.0.0.1:9000/hook", open).is_ok());
        assert!(check_webhook_url("http://localhost/hook", WebhookRules::default()).is_err());
        assert!(check_webhook_url("https://[::1]/hook", WebhookRules::default()).is_err());
        assert!(check_webhook_url("https://user:pw@example.com/", WebhookRules::default()).is_err());
        assert!(check_webhook_url("https://example.com/hook", WebhookRules::default()).is_ok());
    }

    /// Every IPv6 form that carries an IPv4 address: mapped, translated, compatible, NAT64, 6to4.
    fn v6_forms(v4: Ipv4Addr) -> Vec<IpAddr> {
        let [a, b, c, d] = v4.octets();
        let hi = u16::from_be_bytes([a, b]);
        let lo = u16::from_be_bytes([c, d]);
        vec![
            IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo)),
            IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo)),
            IpAddr::V6(Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1)),
        ]
    }

    #[test]
    fn every_forbidden_ipv4_class_is_named_in_every_ipv6_form() {
        let cases = [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.0.1", "link-local"),
            ("169.254.170.2", "link-local"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("255.255.255.255", "broadcast"),
            ("100.64.0.1", "shared address space"),
            ("100.127.255.255", "shared address space"),
            ("0.1.2.3", "this network"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.1", "documentation"),
            ("203.0.113.1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("240.0.0.1", "reserved"),
            ("192.0.0.192", "reserved"),
        ];
        for (raw, class) in cases {
            let v4: Ipv4Addr = raw.parse().unwrap();
            assert_eq!(forbidden_class(IpAddr::V4(v4)), Some(class), "{raw}");
            assert!(is_private(IpAddr::V4(v4)), "{raw}");
            for v6 in v6_forms(v4) {
                assert_eq!(forbidden_class(v6), Some(class), "{v6} (carrying {raw})");
                assert!(is_private(v6), "{v6}");
            }
        }
    }

    #[test]
    fn every_forbidden_ipv6_class_is_named() {
        let cases = [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd00:ec2::253", "unique-local"),
            ("fc00::1", "unique-local"),
            ("fdff:ffff::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("feff::1", "site-local"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001:2::1", "benchmarking"),
            ("64:ff9b:1::a00:1", "private"),
            ("100::1", "reserved"),
        ];
        for (raw, class) in cases {
            let ip: IpAddr = raw.parse().unwrap();
            assert_eq!(forbidden_class(ip), Some(class), "{raw}");
            assert!(is_private(ip), "{raw}");
        }
    }

    #[test]
    fn public_addresses_are_allowed_in_every_form() {
        for raw in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            let v4: Ipv4Addr = raw.parse().unwrap();
            assert_eq!(forbidden_class(IpAddr::V4(v4)), None, "{raw}");
            assert!(!is_private(IpAddr::V4(v4)), "{raw}");
            for v6 in v6_forms(v4) {
                assert_eq!(forbidden_class(v6), None, "{v6} (carrying {raw})");
            }
        }
        for raw in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::200e",
            "2001:db9::1",
        ] {
            let ip: IpAddr = raw.parse().unwrap();
            assert_eq!(forbidden_class(ip), None, "{raw}");
            assert!(!is_private(ip), "{raw}");
        }
    }

    #[test]
    fn webhook_urls_with_embedded_private_addresses_are_refused() {
        for url in [
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:a00:1::]/",
            "https://169.254.169.254/",
            "https://0x7f000001/",
        ] {
            assert!(check_webhook_url(url, WebhookRules::default()).is_err(), "{url}");
        }
    }
}
