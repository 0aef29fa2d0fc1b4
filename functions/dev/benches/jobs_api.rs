//! Load test of `POST /api/v1/jobs` and `GET /api/v1/jobs/{id}` against the real dev server on
//! the embedded backend, from this separate process. Prints p50, p99 and throughput.
//!
//!   cargo bench -p tessera-dev --bench jobs_api             10 s per phase
//!   cargo bench -p tessera-dev --bench jobs_api -- --quick  2 s per phase
//!
//!   cargo bench -p tessera-dev --bench jobs_api -- --instructions
//!     the server under valgrind's callgrind, one connection, requests one after another: the
//!     user-space instructions the server spends per create and per GET. Unlike times, these
//!     barely move between runs or machines, so they compare two builds on a noisy machine (the
//!     kernel's share, the syscalls, is not counted).
//!
//! `TESSERA_BENCH_SERVER=/path/to/tessera` loads another build of the server instead of this
//! one's (to compare two builds on the same machine, run for run).
//!
//! The server runs with a catalog whose plans allow unlimited requests, jobs in flight and
//! tokens (`TESSERA_CATALOG`), so that the limits do not turn the load into 429s; every other
//! step (API-key check, plan limiter, quota transaction, queue send) runs as in production.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// The load generator's allocator is the server's, and as lean.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the benchmark reads of a create's answer.
#[derive(serde::Deserialize)]
struct Created {
    job_id: String,
}

/// Connections of the throughput run; the latency runs use fewer.
const CONNECTIONS: usize = 32;

/// The create rate of the paced run, whose latencies count from each request's appointed time
/// (so that a stall delays the requests behind it too, as it would real clients').
const PACED_CREATES_PER_SECOND: f64 = 3000.0;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick") || std::env::var_os("BENCH_QUICK").is_some();
    let phase = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    let instructions = std::env::args().any(|arg| arg == "--instructions");
    let dir = tempfile::tempdir().expect("temp dir");
    let dumps = instructions.then(|| dir.path().join("callgrind"));
    let (mut server, base, key) = start_server(dir.path(), dumps.as_deref());
    let server_pid = server.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        // Everything a request repeats is built once, so that the load generator spends as
        // little as it can of the cores it shares with the server.
        let authorization = HeaderValue::from_str(&format!("Bearer {key}")).expect("header");
        let body = Bytes::from(
            json!({
                "capability": "image",
                "params": {"prompt": "a beautiful sunset over mountains", "resolution": "1024x1024", "steps": 20, "model": "sdxl"},
                "priority": "normal"
            })
            .to_string(),
        );
        let jobs_url = Url::parse(&format!("{base}/api/v1/jobs")).expect("url");
        let ids = Arc::new(Mutex::new(Vec::new()));
        let create = {
            let (client, authorization, ids) = (client.clone(), authorization.clone(), ids.clone());
            move |_: usize| {
                let request = client
                    .post(jobs_url.clone())
                    .header(AUTHORIZATION, authorization.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
                let ids = ids.clone();
                async move {
                    match request.send().await {
                        Ok(response) if response.status() == 201 => {
                            if let Ok(created) = response.json::<Created>().await {
                                ids.lock().await.push(created.job_id);
                            }
                            true
                        }
                        _ => false,
                    }
                }
            }
        };
        if let Some(dumps) = &dumps {
            count_instructions("POST /api/v1/jobs", server_pid, dumps, create.clone()).await;
        }
        let create_phases = [
            (1, None),
            (4, None),
            (8, None),
            (CONNECTIONS, None),
            (CONNECTIONS, Some(PACED_CREATES_PER_SECOND)),
        ];
        for (connections, pace) in create_phases.into_iter().filter(|_| dumps.is_none()) {
            let result = measured_phase(server_pid, phase, connections, pace, create.clone()).await;
            report("POST /api/v1/jobs", result);
        }
        let job_urls: Vec<Url> = ids
            .lock()
            .await
            .iter()
            .map(|id| Url::parse(&format!("{base}/api/v1/jobs/{id}")).expect("url"))
            .collect();
        if job_urls.is_empty() {
            panic!("no job was created");
        }
        let job_urls = Arc::new(job_urls);
        let get = move |n: usize| {
            let request = client
                .get(job_urls[n % job_urls.len()].clone())
                .header(AUTHORIZATION, authorization.clone());
            async move {
                match request.send().await {
                    Ok(response) if response.status() == 200 => response.bytes().await.is_ok(),
                    _ => false,
                }
            }
        };
        if let Some(dumps) = &dumps {
            count_instructions("GET /api/v1/jobs/{id}", server_pid, dumps, get.clone()).await;
        }
        for connections in [1, 4, 8, CONNECTIONS].into_iter().filter(|_| dumps.is_none()) {
            let result = measured_phase(server_pid, phase, connections, None, get.clone()).await;
            report("GET /api/v1/jobs/{id}", result);
        }
    });
    stop(&mut server);
}

/// Latencies of the successful requests, the failures, and the wall time.
struct Phase {
    latencies: Vec<Duration>,
    failures: usize,
    elapsed: Duration,
    connections: usize,
    /// The offered rate of a paced run (`None`: each connection sends as fast as answered).
    pace: Option<f64>,
    server_cpu: Cpu,
    /// The load generator's own CPU time (it shares the machine's cores with the server).
    client_cpu: Cpu,
}

/// [`run_phase`], with the CPU time the server and this load generator spent meanwhile.
async fn measured_phase<F, Fut>(
    server_pid: u32,
    length: Duration,
    connections: usize,
    pace: Option<f64>,
    request: F,
) -> Phase
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let before = (process_cpu(server_pid), process_cpu(std::process::id()));
    let mut phase = run_phase(length, connections, pace, request).await;
    phase.server_cpu = process_cpu(server_pid).since(before.0);
    phase.client_cpu = process_cpu(std::process::id()).since(before.1);
    phase
}

/// Sends requests on `connections` connections for `length`: each as soon as the one before
/// is answered, or, with a `pace`, request `n` at `n / pace` seconds from the start (see
/// [`Appointments`]), its latency counted from then.
async fn run_phase<F, Fut>(length: Duration, connections: usize, pace: Option<f64>, request: F) -> Phase
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + length;
    let appointments = pace.map(|rate| Appointments::start(started, deadline, rate));
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let request = request.clone();
            let appointments = appointments.clone();
            tokio::spawn(async move {
                let (mut latencies, mut failures, mut unpaced) = (Vec::new(), 0, worker);
                loop {
                    let (n, sent) = match &appointments {
                        Some(appointments) => match appointments.next().await {
                            Some(due) => due,
                            None => break,
                        },
                        None if Instant::now() < deadline => (unpaced, Instant::now()),
                        None => break,
                    };
                    if request(n).await {
                        latencies.push(sent.elapsed());
                    } else {
                        failures += 1;
                    }
                    unpaced += connections;
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut phase = Phase {
        latencies: Vec::new(),
        failures: 0,
        elapsed: Duration::ZERO,
        connections,
        pace,
        server_cpu: Cpu::default(),
        client_cpu: Cpu::default(),
    };
    for worker in workers {
        let (latencies, failures) = worker.await.expect("worker");
        phase.latencies.extend(latencies);
        phase.failures += failures;
    }
    phase.elapsed = started.elapsed();
    phase
}

/// The paced run's requests, each released at its appointed time by a thread of its own:
/// tokio's timers fire on whole milliseconds, which would send the requests of each
/// millisecond together, up to a millisecond late, and count that lateness as the server's.
/// A request waits for a free connection (all busy: the server is behind) with its latency
/// already counting.
#[derive(Clone)]
struct Appointments {
    due: Arc<Mutex<tokio::sync::mpsc::UnboundedReceiver<(usize, Instant)>>>,
}

impl Appointments {
    /// Starts releasing request `n` at `started + n / rate`, until `deadline`.
    fn start(started: Instant, deadline: Instant, rate: f64) -> Self {
        let (release, due) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for n in 0.. {
                let at = started + Duration::from_secs_f64(n as f64 / rate);
                if at >= deadline {
                    break;
                }
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                if release.send((n, at)).is_err() {
                    break;
                }
            }
        });
        Self {
            due: Arc::new(Mutex::new(due)),
        }
    }

    /// The next request due, with its appointed time; `None` once the run is over.
    async fn next(&self) -> Option<(usize, Instant)> {
        self.due.lock().await.recv().await
    }
}

fn report(name: &str, mut phase: Phase) {
    let ok = phase.latencies.len().max(1) as f64;
    phase.latencies.sort_unstable();
    let at = |quantile: f64| {
        let index = ((phase.latencies.len() as f64 * quantile).ceil() as usize).saturating_sub(1);
        phase.latencies.get(index).copied().unwrap_or_default().as_secs_f64() * 1000.0
    };
    let paced = phase
        .pace
        .map(|rate| format!(" paced at {rate:.0}/s"))
        .unwrap_or_default();
    println!(
        "{name}, {} connection(s){paced}: {} ok, {} failed in {:.1} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {:.3} ms/request ({:.3} of it in the kernel), load generator CPU {:.3} ms/request",
        phase.connections,
        phase.latencies.len(),
        phase.failures,
        phase.elapsed.as_secs_f64(),
        phase.latencies.len() as f64 / phase.elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        phase.server_cpu.total().as_secs_f64() * 1000.0 / ok,
        phase.server_cpu.system.as_secs_f64() * 1000.0 / ok,
        phase.client_cpu.total().as_secs_f64() * 1000.0 / ok,
    );
}

/// Starts the release dev server with limit-free plans (under callgrind, writing its counts to
/// `dumps`, when given); answers it, its URL and the demo key.
fn start_server(dir: &Path, dumps: Option<&Path>) -> (Child, String, String) {
    let mut catalog: Value = serde_json::from_str(tessera_core::catalog::SEED).expect("seed");
    for plan in catalog["plans"].as_array_mut().expect("plans") {
        plan["requests_per_minute"] = json!(100_000_000);
        plan["concurrent_jobs"] = json!(100_000_000);
        plan["daily_token_limit"] = json!(100_000_000);
    }
    let catalog_path = dir.join("bench-catalog.json");
    std::fs::write(&catalog_path, catalog.to_string()).expect("catalog");
    let server = std::env::var_os("TESSERA_BENCH_SERVER")
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tessera").into());
    let mut command = match dumps {
        Some(dumps) => {
            std::fs::create_dir_all(dumps).expect("callgrind folder");
            let mut valgrind = Command::new("valgrind");
            valgrind
                .arg("--tool=callgrind")
                .arg(format!(
                    "--callgrind-out-file={}",
                    dumps.join("callgrind.out").display()
                ))
                .arg(server);
            valgrind
        }
        None => Command::new(server),
    };
    let mut child = command
        .env("TESSERA_ADDR", "127.0.0.1:0")
        .env("TESSERA_DATA_DIR", dir)
        .env("TESSERA_CATALOG", &catalog_path)
        .env("RUST_LOG", "warn,tessera_dev=info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tessera");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut key, mut base) = (None, None);
    while base.is_none() {
        let line = lines.next().expect("server output").expect("line");
        if let Some(demo) = line.trim().strip_prefix("API key:") {
            key = Some(demo.trim().to_owned());
        }
        if let Some(at) = line.find("listening on http://") {
            base = line[at + "listening on ".len()..]
                .split_whitespace()
                .next()
                .map(str::to_owned);
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    (child, base.expect("url"), key.expect("the demo API key"))
}

/// Requests sent before counting, so that the server's caches and connections are warm.
const WARM_UP_REQUESTS: usize = 50;

/// Requests counted in an instruction count.
const COUNTED_REQUESTS: usize = 300;

/// Sends `request` one after another to the server running under callgrind as process `pid`,
/// and prints the instructions it spent per request (from callgrind's dump in `dumps`).
async fn count_instructions<F, Fut>(name: &str, pid: u32, dumps: &Path, request: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for n in 0..WARM_UP_REQUESTS {
        assert!(request(n).await, "a warm-up request failed");
    }
    callgrind_control("--zero", pid);
    for n in 0..COUNTED_REQUESTS {
        assert!(request(n).await, "a counted request failed");
    }
    callgrind_control("--dump", pid);
    let instructions = last_dump_total(dumps);
    println!(
        "{name}: {:.0} instructions per request (server user space, {COUNTED_REQUESTS} requests one after another)",
        instructions as f64 / COUNTED_REQUESTS as f64
    );
}

fn callgrind_control(command: &str, pid: u32) {
    let status = Command::new("callgrind_control")
        .args([command, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("callgrind_control (valgrind) must be installed");
    assert!(status.success(), "callgrind_control {command} failed");
}

/// The instruction count of the newest dump in `dumps` (`callgrind.out.<pid>.<part>`, parts
/// numbered from 1).
fn last_dump_total(dumps: &Path) -> u64 {
    let part = |path: &Path| path.extension().and_then(|part| part.to_str()?.parse::<u32>().ok());
    let newest = std::fs::read_dir(dumps)
        .expect("callgrind folder")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| part(path).is_some())
        .max_by_key(|path| part(path))
        .expect("a callgrind dump");
    let dump = std::fs::read_to_string(&newest).expect("callgrind dump");
    dump.lines()
        .find_map(|line| line.strip_prefix("summary:")?.trim().parse().ok())
        .expect("the dump's summary line")
}

/// CPU time a process has used: in user space and in the kernel.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    user: Duration,
    system: Duration,
}

impl Cpu {
    fn total(self) -> Duration {
        self.user + self.system
    }

    /// The time used since `earlier`.
    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The CPU time process `pid` has used so far, from `/proc` (zero elsewhere).
fn process_cpu(pid: u32) -> Cpu {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Cpu::default();
    };
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |field: usize| {
        let ticks = fields
            .get(field)
            .and_then(|ticks| ticks.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_millis(ticks * 10)
    };
    Cpu {
        user: ticks(11),
        system: ticks(12),
    }
}

fn stop(server: &mut Child) {
    let _ = Command::new("kill").args(["-INT", &server.id().to_string()]).status();
    let _ = server.wait();
}
