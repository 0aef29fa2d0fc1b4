//! The worker's configuration, read once from the environment; a bad value stops it with a
//! message naming the variable.

use std::path::PathBuf;
use std::time::Duration;

use tessera_core::{Capability, Priority};

/// Everything the worker reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// `TESSERA_API_URL`: the API's base URL (required).
    pub api_url: String,
    /// `TESSERA_SERVICE_KEY`: a `tessera_svc_` key (required).
    pub service_key: String,
    /// `COMFYUI_URL` (default `http://127.0.0.1:8188`, ComfyUI's own default).
    pub comfyui_url: String,
    /// `TESSERA_WORKER_ID` (default `worker-<pid>`).
    pub worker_id: String,
    /// `TESSERA_WORKER_CAPABILITIES`: comma-separated (default `image`).
    pub capabilities: Vec<Capability>,
    /// `TESSERA_WORKER_PRIORITIES`: comma-separated (default all, most urgent first).
    pub priorities: Vec<Priority>,
    /// `TESSERA_WORKFLOWS_DIR` (default `gpu-worker/workflows`).
    pub workflows_dir: PathBuf,
    /// `TESSERA_WORKER_POLL_SECONDS`: the longest long poll, 1–20 (default 20).
    pub poll_wait: Duration,
    /// `TESSERA_WORKER_ADDR`: where `/worker/health` and `/worker/capabilities` listen
    /// (default `127.0.0.1:8189`).
    pub status_addr: std::net::SocketAddr,
    /// `TESSERA_WORKER_MAX_JOB_SECONDS`: a cap on any job's run time, 1–86400 (default: none,
    /// the job's own timeout).
    pub max_job_time: Option<Duration>,
    /// `TESSERA_WORKER_DRAIN_SECONDS`: on SIGTERM, how long the job in hand may go on before it is
    /// interrupted and given back to the queue, 0–3600 (default 30).
    pub drain_grace: Duration,
    /// `TESSERA_WORKER_CONCURRENCY`: jobs run on ComfyUI at once, 1–8 (default 1).
    pub concurrency: usize,
}

/// A variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Why.
    pub reason: String,
}

impl WorkerConfig {
    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let read = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let bad = |variable: &'static str, reason: &str| ConfigError {
            variable,
            reason: reason.to_owned(),
        };
        let url = |variable: &'static str, value: String| {
            if value.starts_with("http://") || value.starts_with("https://") {
                Ok(value.trim_end_matches('/').to_owned())
            } else {
                Err(bad(variable, "expected an http:// or https:// URL"))
            }
        };
        let api_url = url(
            "TESSERA_API_URL",
            read("TESSERA_API_URL").ok_or_else(|| bad("TESSERA_API_URL", "not set"))?,
        )?;
        let service_key = read("TESSERA_SERVICE_KEY").ok_or_else(|| bad("TESSERA_SERVICE_KEY", "not set"))?;
        if !service_key.starts_with("tessera_svc_") {
            return Err(bad(
                "TESSERA_SERVICE_KEY",
                "expected a tessera_svc_ key (admin create-service-key)",
            ));
        }
        let comfyui_url = url(
            "COMFYUI_URL",
            read("COMFYUI_URL").unwrap_or_else(|| "http://127.0.0.1:8188".into()),
        )?;
        let capabilities = match read("TESSERA_WORKER_CAPABILITIES") {
            None => vec![Capability::Image],
            Some(list) => list
                .split(',')
                .map(|item| item.trim().parse::<Capability>())
                .collect::<Result<_, _>>()
                .map_err(|error| bad("TESSERA_WORKER_CAPABILITIES", &error.to_string()))?,
        };
        let priorities = match read("TESSERA_WORKER_PRIORITIES") {
            None => Priority::ALL.to_vec(),
            Some(list) => list
                .split(',')
                .map(|item| item.trim().parse::<Priority>())
                .collect::<Result<_, _>>()
                .map_err(|error| bad("TESSERA_WORKER_PRIORITIES", &error.to_string()))?,
        };
        let poll = match read("TESSERA_WORKER_POLL_SECONDS") {
            None => 20,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|seconds| (1..=20).contains(seconds))
                .ok_or_else(|| bad("TESSERA_WORKER_POLL_SECONDS", "expected 1 to 20"))?,
        };
        let status_addr = match read("TESSERA_WORKER_ADDR") {
            None => std::net::SocketAddr::from(([127, 0, 0, 1], 8189)),
            Some(raw) => raw
                .parse()
                .map_err(|_| bad("TESSERA_WORKER_ADDR", "expected host:port"))?,
        };
        let max_job_time = read("TESSERA_WORKER_MAX_JOB_SECONDS")
            .map(|raw| {
                raw.parse::<u64>()
                    .ok()
                    .filter(|seconds| (1..=86_400).contains(seconds))
                    .map(Duration::from_secs)
                    .ok_or_else(|| bad("TESSERA_WORKER_MAX_JOB_SECONDS", "expected 1 to 86400"))
            })
            .transpose()?;
        let drain = match read("TESSERA_WORKER_DRAIN_SECONDS") {
            None => 30,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|seconds| *seconds <= 3600)
                .ok_or_else(|| bad("TESSERA_WORKER_DRAIN_SECONDS", "expected 0 to 3600"))?,
        };
        let concurrency = match read("TESSERA_WORKER_CONCURRENCY") {
            None => 1,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|jobs| (1..=crate::daemon::MAX_CONCURRENCY).contains(jobs))
                .ok_or_else(|| bad("TESSERA_WORKER_CONCURRENCY", "expected 1 to 8"))?,
        };
        Ok(Self {
            api_url,
            service_key,
            comfyui_url,
            worker_id: read("TESSERA_WORKER_ID").unwrap_or_else(|| format!("worker-{}", std::process::id())),
            capabilities,
            priorities,
            workflows_dir: read("TESSERA_WORKFLOWS_DIR")
                .map_or_else(|| PathBuf::from("gpu-worker/workflows"), PathBuf::from),
            poll_wait: Duration::from_secs(poll),
            status_addr,
            max_job_time,
            drain_grace: Duration::from_secs(drain),
            concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        WorkerConfig::from_lookup(|name| vars.get(name).cloned())
    }

    const REQUIRED: [(&str, &str); 2] = [
        ("TESSERA_API_URL", "http://127.0.0.1:8000/"),
        ("TESSERA_SERVICE_KEY", "tessera_svc_x_y"),
    ];

    #[test]
    fn defaults_follow_comfyui_and_serve_images() {
        let config = config(&REQUIRED).expect("valid");
        assert_eq!(config.api_url, "http://127.0.0.1:8000");
        assert_eq!(config.comfyui_url, "http://127.0.0.1:8188");
        assert_eq!(config.capabilities, [Capability::Image]);
        assert_eq!(config.priorities, Priority::ALL);
        assert_eq!(config.drain_grace, Duration::from_secs(30));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (variable, value) in [
            ("TESSERA_API_URL", "localhost:8000"),
            ("TESSERA_SERVICE_KEY", "tessera_abc_def"),
            ("COMFYUI_URL", "ftp://x"),
            ("TESSERA_WORKER_CAPABILITIES", "image,smell"),
            ("TESSERA_WORKER_PRIORITIES", "urgent"),
            ("TESSERA_WORKER_POLL_SECONDS", "60"),
            ("TESSERA_WORKER_ADDR", "nowhere"),
            ("TESSERA_WORKER_MAX_JOB_SECONDS", "0"),
            ("TESSERA_WORKER_DRAIN_SECONDS", "-1"),
            ("TESSERA_WORKER_CONCURRENCY", "9"),
        ] {
            let mut vars = REQUIRED.to_vec();
            vars.retain(|(name, _)| *name != variable);
            vars.push((variable, value));
            assert_eq!(config(&vars).expect_err(variable).variable, variable);
        }
        assert_eq!(config(&[]).expect_err("missing").variable, "TESSERA_API_URL");
    }
}
