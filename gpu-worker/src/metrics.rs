//! The worker's Prometheus metrics: jobs by outcome and their durations, ComfyUI's errors by kind, and the
//! jobs in progress, rendered in the OpenMetrics text format by [`Metrics::render`].
//!
//! | name | type | labels |
//! |---|---|---|
//! | `tessera_worker_jobs_total` | counter | `outcome` = completed, failed, dropped, released |
//! | `tessera_worker_job_duration_seconds` | histogram ([`DURATION_BUCKETS`]) | `outcome` |
//! | `tessera_worker_comfyui_errors_total` | counter | `kind` = unreachable, validation, execution, oom, timeout, lost_socket |
//! | `tessera_worker_jobs_in_progress` | gauge | none |
//!
//! Every label value's series exists from the start at 0, so `rate()` and `increase()` see the first event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s output: `prometheus_client::encoding::text::encode` writes the
/// OpenMetrics 1.0.0 text format (`_total` counters, `# UNIT` lines, a closing `# EOF`), which Prometheus
/// scrapes when the response says so.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The upper bounds, in seconds, of `tessera_worker_job_duration_seconds`'s buckets (plus the implicit `+Inf`):
/// from a cached no-op to a ten-minute video.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// How a job left this worker: the `outcome` label of the job metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The job's outputs were stored and the job completed.
    Completed,
    /// The job was reported failed.
    Failed,
    /// The job was cancelled, or taken over by another attempt: interrupted and dropped.
    Dropped,
    /// The job was handed back to the queue (ComfyUI went away, or the worker stopped).
    Released,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 4] = [Outcome::Completed, Outcome::Failed, Outcome::Dropped, Outcome::Released];

    /// The label value: `completed`, `failed`, `dropped` or `released`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
            Outcome::Released => "released",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// What went wrong with ComfyUI: the `kind` label of `tessera_worker_comfyui_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComfyErrorKind {
    /// ComfyUI could not be reached (connection refused, HTTP error).
    Unreachable,
    /// ComfyUI rejected the prompt (`/prompt` answered with a validation error).
    Validation,
    /// A node failed while the prompt executed (`execution_error`).
    Execution,
    /// The GPU ran out of memory.
    Oom,
    /// The prompt did not finish in time.
    Timeout,
    /// ComfyUI's WebSocket closed or broke mid-job.
    LostSocket,
}

impl ComfyErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ComfyErrorKind; 6] = [
        ComfyErrorKind::Unreachable,
        ComfyErrorKind::Validation,
        ComfyErrorKind::Execution,
        ComfyErrorKind::Oom,
        ComfyErrorKind::Timeout,
        ComfyErrorKind::LostSocket,
    ];

    /// The label value: `unreachable`, `validation`, `execution`, `oom`, `timeout` or `lost_socket`.
    pub fn as_str(self) -> &'static str {
        match self {
            ComfyErrorKind::Unreachable => "unreachable",
            ComfyErrorKind::Validation => "validation",
            ComfyErrorKind::Execution => "execution",
            ComfyErrorKind::Oom => "oom",
            ComfyErrorKind::Timeout => "timeout",
            ComfyErrorKind::LostSocket => "lost_socket",
        }
    }
}

impl EncodeLabelValue for ComfyErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: ComfyErrorKind,
}

type DurationFamily = Family<OutcomeLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    jobs: Family<OutcomeLabels, Counter>,
    durations: DurationFamily,
    comfy_errors: Family<KindLabels, Counter>,
    in_progress: Gauge,
}

/// The worker's metrics and the registry that renders them. Cloning is cheap and every clone updates the same
/// metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the worker's metrics, every labelled series at 0.
    pub fn new() -> Self {
        let jobs = Family::<OutcomeLabels, Counter>::default();
        let durations: DurationFamily = Family::new_with_constructor(duration_histogram);
        let comfy_errors = Family::<KindLabels, Counter>::default();
        let in_progress = Gauge::default();
        // Creating each series (and dropping the read guard at once) exposes it at 0 before its first event.
        for outcome in Outcome::ALL {
            let labels = OutcomeLabels { outcome };
            drop(jobs.get_or_create(&labels));
            drop(durations.get_or_create(&labels));
        }
        for kind in ComfyErrorKind::ALL {
            drop(comfy_errors.get_or_create(&KindLabels { kind }));
        }

        let mut registry = Registry::default();
        // Counters are registered without `_total` and histograms without their unit: the encoder appends both.
        registry.register(
            "tessera_worker_jobs",
            "Jobs this worker finished, by outcome",
            jobs.clone(),
        );
        registry.register_with_unit(
            "tessera_worker_job_duration",
            "Wall-clock time from claiming a job to its outcome, by outcome",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "tessera_worker_comfyui_errors",
            "Errors from ComfyUI, by kind",
            comfy_errors.clone(),
        );
        registry.register(
            "tessera_worker_jobs_in_progress",
            "Jobs this worker is running now",
            in_progress.clone(),
        );

        Metrics {
            inner: Arc::new(Inner {
                registry,
                jobs,
                durations,
                comfy_errors,
                in_progress,
            }),
        }
    }

    /// Counts a finished job and records how long it took.
    pub fn job_finished(&self, outcome: Outcome, duration: Duration) {
        let labels = OutcomeLabels { outcome };
        self.inner.jobs.get_or_create(&labels).inc();
        self.inner
            .durations
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    /// Counts one error from ComfyUI.
    pub fn comfy_error(&self, kind: ComfyErrorKind) {
        self.inner.comfy_errors.get_or_create(&KindLabels { kind }).inc();
    }

    /// Counts a job as in progress until the returned guard drops; [`JobGuard::finish`] also records its outcome
    /// and duration, measured from this call.
    pub fn job_started(&self) -> JobGuard {
        self.inner.in_progress.inc();
        JobGuard {
            metrics: self.clone(),
            started: Instant::now(),
        }
    }

    /// The number of jobs in progress now.
    pub fn jobs_in_progress(&self) -> i64 {
        self.inner.in_progress.get()
    }

    /// Every metric in the OpenMetrics text format, ending with `# EOF`; serve it with [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

/// One job in progress, from [`Metrics::job_started`]: dropping it takes the job out of
/// `tessera_worker_jobs_in_progress`, whether or not [`JobGuard::finish`] recorded an outcome first (a job that
/// panics or returns early still leaves the gauge).
#[derive(Debug)]
#[must_use = "the job counts as in progress only while the guard lives"]
pub struct JobGuard {
    metrics: Metrics,
    started: Instant,
}

impl JobGuard {
    /// The time since [`Metrics::job_started`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records the job's outcome and its duration since [`Metrics::job_started`], ends it, and returns the
    /// duration.
    pub fn finish(self, outcome: Outcome) -> Duration {
        let duration = self.elapsed();
        self.metrics.job_finished(outcome, duration);
        duration
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.metrics.inner.in_progress.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `series` (name and labels exactly as rendered), if there is one.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("sample value is a number"))
        })
    }

    fn value(text: &str, series: &str) -> f64 {
        sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
    }

    #[test]
    fn fresh_metrics_have_every_series_at_zero() {
        let text = Metrics::new().render();
        for outcome in Outcome::ALL {
            let o = outcome.as_str();
            assert_eq!(
                value(&text, &format!("tessera_worker_jobs_total{{outcome=\"{o}\"}}")),
                0.0
            );
            assert_eq!(
                value(
                    &text,
                    &format!("tessera_worker_job_duration_seconds_count{{outcome=\"{o}\"}}")
                ),
                0.0
            );
            assert_eq!(
                value(
                    &text,
                    &format!("tessera_worker_job_duration_seconds_sum{{outcome=\"{o}\"}}")
                ),
                0.0
            );
        }
        for kind in ComfyErrorKind::ALL {
            let series = format!("tessera_worker_comfyui_errors_total{{kind=\"{}\"}}", kind.as_str());
            assert_eq!(value(&text, &series), 0.0);
        }
        assert_eq!(value(&text, "tessera_worker_jobs_in_progress"), 0.0);
        assert!(text.contains("# TYPE tessera_worker_jobs counter\n"), "{text}");
        assert!(
            text.contains("# TYPE tessera_worker_job_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT tessera_worker_job_duration_seconds seconds\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tessera_worker_comfyui_errors counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tessera_worker_jobs_in_progress gauge\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn jobs_are_counted_and_timed_by_outcome() {
        let metrics = Metrics::new();
        metrics.job_finished(Outcome::Completed, Duration::from_millis(1500));
        metrics
            .clone()
            .job_finished(Outcome::Completed, Duration::from_secs(40));
        metrics.job_finished(Outcome::Failed, Duration::from_millis(30));
        metrics.job_finished(Outcome::Released, Duration::from_secs(700));
        let text = metrics.render();

        assert_eq!(value(&text, r#"tessera_worker_jobs_total{outcome="completed"}"#), 2.0);
        assert_eq!(value(&text, r#"tessera_worker_jobs_total{outcome="failed"}"#), 1.0);
        assert_eq!(value(&text, r#"tessera_worker_jobs_total{outcome="dropped"}"#), 0.0);
        assert_eq!(value(&text, r#"tessera_worker_jobs_total{outcome="released"}"#), 1.0);

        assert_eq!(
            value(
                &text,
                r#"tessera_worker_job_duration_seconds_count{outcome="completed"}"#
            ),
            2.0
        );
        assert_eq!(
            value(&text, r#"tessera_worker_job_duration_seconds_sum{outcome="completed"}"#),
            41.5
        );
        assert_eq!(
            value(&text, r#"tessera_worker_job_duration_seconds_count{outcome="failed"}"#),
            1.0
        );
        assert!((value(&text, r#"tessera_worker_job_duration_seconds_sum{outcome="failed"}"#) - 0.03).abs() < 1e-9);
        assert_eq!(
            value(&text, r#"tessera_worker_job_duration_seconds_sum{outcome="released"}"#),
            700.0
        );

        // Buckets are cumulative: 1.5 s falls in le=2.5 and up, 40 s in le=60 and up.
        let bucket = |outcome: &str, le: &str| {
            value(
                &text,
                &format!(r#"tessera_worker_job_duration_seconds_bucket{{le="{le}",outcome="{outcome}"}}"#),
            )
        };
        assert_eq!(bucket("completed", "1.0"), 0.0);
        assert_eq!(bucket("completed", "2.5"), 1.0);
        assert_eq!(bucket("completed", "30.0"), 1.0);
        assert_eq!(bucket("completed", "60.0"), 2.0);
        assert_eq!(bucket("completed", "+Inf"), 2.0);
        assert_eq!(bucket("failed", "0.05"), 1.0);
        assert_eq!(bucket("released", "600.0"), 0.0);
        assert_eq!(bucket("released", "+Inf"), 1.0);
        let completed_buckets = text
            .lines()
            .filter(|l| l.starts_with("tessera_worker_job_duration_seconds_bucket{") && l.contains("\"completed\""))
            .count();
        assert_eq!(completed_buckets, DURATION_BUCKETS.len() + 1, "{text}");
    }

    #[test]
    fn comfy_errors_are_counted_by_kind() {
        let metrics = Metrics::new();
        metrics.comfy_error(ComfyErrorKind::Oom);
        metrics.comfy_error(ComfyErrorKind::Oom);
        metrics.comfy_error(ComfyErrorKind::LostSocket);
        metrics.comfy_error(ComfyErrorKind::Unreachable);
        let text = metrics.render();

        assert_eq!(value(&text, r#"tessera_worker_comfyui_errors_total{kind="oom"}"#), 2.0);
        assert_eq!(
            value(&text, r#"tessera_worker_comfyui_errors_total{kind="lost_socket"}"#),
            1.0
        );
        assert_eq!(
            value(&text, r#"tessera_worker_comfyui_errors_total{kind="unreachable"}"#),
            1.0
        );
        assert_eq!(
            value(&text, r#"tessera_worker_comfyui_errors_total{kind="validation"}"#),
            0.0
        );
        assert_eq!(
            value(&text, r#"tessera_worker_comfyui_errors_total{kind="execution"}"#),
            0.0
        );
        assert_eq!(
            value(&text, r#"tessera_worker_comfyui_errors_total{kind="timeout"}"#),
            0.0
        );
        assert_eq!(value(&text, r#"tessera_worker_jobs_total{outcome="failed"}"#), 0.0);
    }

    #[test]
    fn guards_track_jobs_in_progress() {
        let metrics = Metrics::new();
        let first = metrics.job_started();
        let second = metrics.job_started();
        assert_eq!(metrics.jobs_in_progress(), 2);
        assert_eq!(value(&metrics.render(), "tessera_worker_jobs_in_progress"), 2.0);

        let took = first.finish(Outcome::Completed);
        assert_eq!(metrics.jobs_in_progress(), 1);
        drop(second);
        let text = metrics.render();
        assert_eq!(value(&text, "tessera_worker_jobs_in_progress"), 0.0);
        assert_eq!(value(&text, r#"tessera_worker_jobs_total{outcome="completed"}"#), 1.0);
        assert_eq!(
            value(&text, r#"tessera_worker_job_duration_seconds_sum{outcome="completed"}"#),
            took.as_secs_f64()
        );
        // A guard dropped without `finish` records no outcome.
        let recorded: f64 = Outcome::ALL
            .iter()
            .map(|o| {
                value(
                    &text,
                    &format!("tessera_worker_jobs_total{{outcome=\"{}\"}}", o.as_str()),
                )
            })
            .sum();
        assert_eq!(recorded, 1.0);
    }

    #[test]
    fn the_guard_leaves_the_gauge_when_a_job_panics() {
        let metrics = Metrics::new();
        let cloned = metrics.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _job = cloned.job_started();
            panic!("job blew up");
        }));
        assert!(result.is_err());
        assert_eq!(metrics.jobs_in_progress(), 0);
    }

    #[test]
    fn label_values_are_snake_case() {
        let values: Vec<_> = ComfyErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            values,
            [
                "unreachable",
                "validation",
                "execution",
                "oom",
                "timeout",
                "lost_socket"
            ]
        );
        let values: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(values, ["completed", "failed", "dropped", "released"]);
    }
}
