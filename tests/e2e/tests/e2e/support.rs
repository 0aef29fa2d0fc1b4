//! The backends under test, each freshly opened per test, and the clock they share with it.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera_api::auth::{AuthConfig, AuthService, JwtKeys};
use tessera_api::rate_limit::Rule;
use tessera_api::ssrf::{HostResolver, SystemResolver};
use tessera_api::v1::{V1State, WebhookKey, WebhookSettings};
use tessera_core::request::WebhookRules;
use tessera_core::{Clock, RandomIds};
use tessera_store::aws::AwsStore;
use tessera_store::definitions::Naming;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tessera_store::{BlobStore, BucketDef, Counters, Definitions, ItemStore, Ports, Queue, QueueDef};
use time::OffsetDateTime;

/// Runs each named conformance test against both backends, as `<name>::embedded` and
/// `<name>::aws`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name($crate::support::Backend::embedded().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn aws() {
                super::$name($crate::support::Backend::aws().await).await
            }
        }
    )*};
}

/// The real time plus an offset that tests move forward, so queues see real time pass while
/// TTL and signature expiry can be jumped over without sleeping.
#[derive(Debug, Clone, Default)]
pub struct ShiftedClock {
    offset: Arc<Mutex<time::Duration>>,
}

impl ShiftedClock {
    /// Moves this clock `by` ahead of real time.
    pub fn advance(&self, by: time::Duration) {
        *self.offset.lock().expect("clock") += by;
    }

    /// Moves this clock into the next window of `rule` (fixed windows aligned to the Unix
    /// epoch, as the rate limits count) when fewer than `margin_seconds` remain of the current
    /// one, so that a test counting requests in one window never straddles two.
    pub fn clear_of_window_end(&self, rule: Rule, margin_seconds: i64) {
        let now = self.now().unix_timestamp();
        let left = rule.window_seconds - now.rem_euclid(rule.window_seconds);
        if left < margin_seconds {
            self.advance(time::Duration::seconds(left + 1));
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.offset.lock().expect("clock")
    }
}

/// One backend, opened for one test.
pub struct Backend {
    /// The item store port.
    pub items: Arc<dyn ItemStore>,
    /// The queue port.
    pub queue: Arc<dyn Queue>,
    /// The blob store port.
    pub blobs: Arc<dyn BlobStore>,
    /// The rate limits' counters.
    pub counters: Arc<dyn Counters>,
    /// The store's clock.
    pub clock: ShiftedClock,
    aws: Option<Arc<AwsStore>>,
    _dir: Option<TempDir>,
}

impl Backend {
    /// An embedded store in a fresh folder, its signed URLs served by the real blob route on a
    /// loopback port.
    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let public_url = format!("http://{}", listener.local_addr().expect("addr"));
        let clock = ShiftedClock::default();
        let store = Arc::new(
            EmbeddedStore::open(EmbeddedConfig {
                dir: dir.path().to_owned(),
                public_url,
                clock: Arc::new(clock.clone()),
            })
            .expect("open embedded store"),
        );
        let routes = tessera_api::blobs::router(store.clone());
        tokio::spawn(async move { axum::serve(listener, routes).await });
        Self {
            items: store.clone(),
            queue: store.clone(),
            blobs: store.clone(),
            counters: store,
            clock,
            aws: None,
            _dir: Some(dir),
        }
    }

    /// The AWS backend against the emulator at `AWS_ENDPOINT_URL`, with resources under a
    /// prefix unique to this test process (created once per process).
    pub async fn aws() -> Self {
        require_emulator();
        let clock = ShiftedClock::default();
        let naming = Naming::new(test_prefix()).expect("prefix");
        let store = Arc::new(
            AwsStore::from_env(naming, Arc::new(clock.clone()))
                .await
                .expect("AWS clients"),
        );
        static BOOTSTRAPPED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        BOOTSTRAPPED
            .get_or_init(|| async {
                store
                    .bootstrap(&Definitions::tessera())
                    .await
                    .expect("bootstrap on the emulator");
            })
            .await;
        Self {
            items: store.clone(),
            queue: store.clone(),
            blobs: store.clone(),
            counters: store.clone(),
            clock,
            aws: Some(store),
            _dir: None,
        }
    }

    /// A queue of this test's own, created where the backend needs it.
    pub async fn fresh_queue(&self, mut def: QueueDef) -> QueueDef {
        let suffix = unique("q");
        let rename = |name: &str| match name.strip_suffix(".fifo") {
            Some(stem) => format!("{stem}-{suffix}.fifo"),
            None => format!("{name}-{suffix}"),
        };
        def.name = rename(&def.name);
        if let Some(dead_letter) = &mut def.dead_letter {
            dead_letter.queue.name = rename(&dead_letter.queue.name);
        }
        if let Some(aws) = &self.aws {
            aws.ensure_queue(&def).await.expect("create queue");
        }
        def
    }

    /// The ports, with `queue` in place of the backend's own.
    pub fn ports_with(&self, queue: Arc<dyn Queue>) -> Ports {
        Ports {
            items: self.items.clone(),
            queue,
            blobs: self.blobs.clone(),
            counters: self.counters.clone(),
            backend: "test",
        }
    }

    /// The ports.
    pub fn ports(&self) -> Ports {
        self.ports_with(self.queue.clone())
    }

    /// The backend's clock, in unix seconds.
    pub fn clock_now(&self) -> i64 {
        self.clock.now_unix()
    }

    /// The bucket the blob tests write to (keys are made unique per test).
    pub fn bucket(&self) -> BucketDef {
        tessera_store::definitions::artifacts_bucket()
    }
}

/// A string unique to this call, for keys and names: `<what>` and 10 random characters.
pub fn unique(what: &str) -> String {
    let suffix: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(10)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{what}{suffix}")
}

/// Held by a test for as long as it runs the whole repair sweep: on the emulator every test of
/// the process shares the lanes and the outbox, and one test's sweep sends another's unsent jobs
/// (which that test may be checking are not sent yet).
pub async fn sweeping_alone() -> tokio::sync::MutexGuard<'static, ()> {
    static SWEEPS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SWEEPS.lock().await
}

/// The resource prefix of this test process on the emulator (bootstrapped by [`Backend::aws`]).
pub fn test_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| unique("t"))
}

fn require_emulator() {
    const HOW: &str = "the AWS backend tests need a local AWS emulator: run `infra/test.sh`, \
                       or `export AWS_ENDPOINT_URL=$(infra/moto.sh) AWS_ACCESS_KEY_ID=test \
                       AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1` before `cargo test`";
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL is not set: {HOW}"));
    let authority = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let address: SocketAddr = authority
        .parse()
        .unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL={endpoint} is not http://<ip>:<port>: {HOW}"));
    TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .unwrap_or_else(|error| panic!("no AWS emulator answers at {endpoint} ({error}): {HOW}"));
}

/// The JWT signing secret of every test app.
pub const TEST_JWT_SECRET: &str = "e2e-secret-0123456789abcdef0123456789";
/// The key webhook secrets are derived from in every test app.
pub const TEST_WEBHOOK_KEY: &str = "e2e-webhook-key-0123456789abcdef0123";
/// The kid of that secret.
pub const TEST_JWT_KID: &str = "e2e1";

/// The API families served over a backend on a loopback port, with the backend's clock.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client whose requests come from an IP address of this app's own (`X-Forwarded-For`,
    /// trusted by the app), so rate limits never leak between tests sharing a table.
    pub client: reqwest::Client,
    /// The auth service the app runs.
    pub auth: AuthService,
    /// The state of its `/api/v1` families.
    pub v1: V1State,
    /// The backend.
    pub backend: Backend,
}

impl TestApp {
    /// Serves every family over `backend` (trusting `X-Forwarded-For`).
    pub async fn spawn(backend: Backend) -> Self {
        let queue = backend.queue.clone();
        Self::spawn_with_queue(backend, queue).await
    }

    /// Serves every family over `backend`, with the API sending job messages through `queue`.
    pub async fn spawn_with_queue(backend: Backend, queue: Arc<dyn Queue>) -> Self {
        let open = WebhookRules {
            allow_http: true,
            allow_private: true,
        };
        Self::serve(backend, queue, webhook_settings(open, Arc::new(SystemResolver))).await
    }

    /// Serves every family over `backend`, with webhooks checked and sent by `webhook`.
    pub async fn spawn_with_webhooks(backend: Backend, webhook: WebhookSettings) -> Self {
        let queue = backend.queue.clone();
        Self::serve(backend, queue, webhook).await
    }

    async fn serve(backend: Backend, queue: Arc<dyn Queue>, webhook: WebhookSettings) -> Self {
        let keys =
            JwtKeys::parse(&format!("{TEST_JWT_KID}:{TEST_JWT_SECRET}"), "tessera", "tessera-api").expect("keys");
        let ports = backend.ports_with(queue);
        let auth = AuthService::new(
            &ports,
            Arc::new(backend.clock.clone()),
            Arc::new(RandomIds),
            AuthConfig {
                jwt: keys,
                trust_forwarded_for: true,
            },
        );
        let dev_backend = tessera_dev::Backend { ports, embedded: None };
        let v1 = V1State::new(
            &dev_backend.ports,
            auth.clone(),
            Arc::new(backend.clock.clone()),
            Arc::new(RandomIds),
            webhook,
        );
        let base = tessera_dev::spawn_app(&dev_backend, auth.clone(), v1.clone())
            .await
            .expect("serve");
        Self {
            base,
            client: client_from(&random_ip()),
            auth,
            v1,
            backend,
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs up a new user with a unique e-mail; answers `(email, password, sign-up body)`.
    pub async fn signup(&self) -> (String, String, Value) {
        let email = format!("{}@example.com", unique("user"));
        let password = "correct horse battery staple".to_owned();
        let response = self
            .client
            .post(self.url("/api/auth/signup"))
            .json(&json!({ "email": email, "password": password, "name": "Test User" }))
            .send()
            .await
            .expect("signup");
        assert_eq!(response.status(), 201);
        (email, password, response.json().await.expect("json"))
    }

    /// A new user's access token.
    pub async fn user_token(&self) -> String {
        let (_, _, body) = self.signup().await;
        body["tokens"]["access_token"].as_str().expect("token").to_owned()
    }
}

/// Webhook settings with the test key, `rules`, `resolver` and a 1 s timeout (so that a
/// receiver that hangs fails an attempt quickly).
pub fn webhook_settings(rules: WebhookRules, resolver: Arc<dyn HostResolver>) -> WebhookSettings {
    let key = WebhookKey::parse(TEST_WEBHOOK_KEY).expect("key");
    WebhookSettings::with(rules, key, resolver, Duration::from_secs(1))
}

/// A client that says it comes from `ip`.
pub fn client_from(ip: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().expect("header"));
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A random address in 10.0.0.0/8.
pub fn random_ip() -> String {
    let mut rng = rand::rng();
    format!(
        "10.{}.{}.{}",
        rng.random::<u8>(),
        rng.random::<u8>(),
        rng.random_range(1..255u8)
    )
}

/// The tenant-isolation check every family reuses: `stranger`'s request for another tenant's
/// object must answer exactly like a request for an object that never existed (404), so ids
/// of other tenants reveal nothing.
pub async fn assert_hidden_from_stranger(
    app: &TestApp,
    stranger: &str,
    method: reqwest::Method,
    path: &str,
    missing: &str,
) {
    let send = |path: String| {
        app.client
            .request(method.clone(), app.url(&path))
            .bearer_auth(stranger)
            .send()
    };
    let foreign = send(path.to_owned()).await.expect("request");
    let status = foreign.status();
    let foreign_body = foreign.text().await.expect("body");
    let absent = send(missing.to_owned()).await.expect("request");
    assert_eq!(status, 404, "{method} {path} by a stranger: {foreign_body}");
    assert_eq!(absent.status(), 404, "{method} {missing}");
    assert_eq!(
        foreign_body,
        absent.text().await.expect("body"),
        "the two 404s must look alike"
    );
}
