//! The generation API (`/api/v1`): the `jobs`, `users` and `models` families, their shared
//! state, and the per-plan request limit every one of them counts against.

pub mod canary;
pub mod error;
pub mod jobs;
pub mod models;
pub mod schemas;
pub mod sweep;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tessera_core::request::WebhookRules;
use tessera_core::{Catalog, Clock, IdSource, Principal};
use tessera_store::events::Events;
use tessera_store::jobs::Jobs;
use tessera_store::{BlobStore, ItemStore, Ports, Queue};

pub use error::ApiError;
pub use webhooks::{WebhookKey, WebhookSettings};

use crate::auth::layer::authenticate;
use crate::auth::{Accepts, AuthService, Guard};
use crate::rate_limit::Rule;

/// Everything the `/api/v1` families need, shared: a clone (one per request) copies a pointer.
/// The parts read through `Deref`; changing one (at set-up) copies them first if they are
/// shared.
#[derive(Clone)]
pub struct V1State(Arc<V1Parts>);

/// What a [`V1State`] holds.
#[derive(Clone)]
pub struct V1Parts {
    /// Authentication and the shared limiter.
    pub auth: AuthService,
    /// The jobs repository.
    pub jobs: Jobs,
    /// The item store itself (worker registry).
    pub items: Arc<dyn ItemStore>,
    /// The job queues.
    pub queue: Arc<dyn Queue>,
    /// The artifacts.
    pub blobs: Arc<dyn BlobStore>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where job ids come from.
    pub ids: Arc<dyn IdSource>,
    /// Plans, models and prices.
    pub catalog: &'static Catalog,
    /// The events repository (outbox, deliveries, webhook secrets).
    pub events: Events,
    /// How webhooks are checked, signed and sent.
    pub webhook: WebhookSettings,
    /// How often the sweep runs a canary job (`None`: never).
    pub canary_every: Option<std::time::Duration>,
    /// Where the sweep's last pass of each lane stopped (shared by every clone of the state).
    pub sweep_marks: Arc<sweep::SweepMarks>,
}

impl V1State {
    /// The state over `ports`.
    pub fn new(
        ports: &Ports,
        auth: AuthService,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        webhook: WebhookSettings,
    ) -> Self {
        Self(Arc::new(V1Parts {
            auth,
            jobs: Jobs::new(ports.items.clone()),
            events: Events::new(ports.items.clone()),
            items: ports.items.clone(),
            queue: ports.queue.clone(),
            blobs: ports.blobs.clone(),
            clock,
            ids,
            catalog: Catalog::active(),
            webhook,
            canary_every: None,
            sweep_marks: Arc::default(),
        }))
    }

    /// Now, in unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Now, in microseconds since the epoch.
    pub fn now_micros(&self) -> i64 {
        i64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
    }

    /// The tokens `tenant` has used today (UTC), in thousandths, from its usage counter.
    pub async fn tokens_used_today(&self, tenant: &tessera_core::TenantId) -> tessera_store::StoreResult<u64> {
        let today = jobs::utc_day(self.now());
        let days = self.jobs.usage(tenant, &today, &today).await?;
        Ok(days
            .first()
            .map_or(0, |day| u64::try_from(day.tokens_used).unwrap_or(0)))
    }
}

impl std::ops::Deref for V1State {
    type Target = V1Parts;

    fn deref(&self) -> &V1Parts {
        &self.0
    }
}

impl std::ops::DerefMut for V1State {
    fn deref_mut(&mut self) -> &mut V1Parts {
        Arc::make_mut(&mut self.0)
    }
}

/// Reads `TESSERA_WEBHOOK_ALLOW_HTTP` and `TESSERA_WEBHOOK_ALLOW_PRIVATE` (`true`/`false`, both
/// `false` by default); a bad value answers the variable and why.
pub fn webhook_rules(lookup: impl Fn(&str) -> Option<String>) -> Result<WebhookRules, (&'static str, String)> {
    let flag = |variable: &'static str| match lookup(variable).as_deref().map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err((variable, "expected 'true' or 'false'".to_owned())),
    };
    Ok(WebhookRules {
        allow_http: flag("TESSERA_WEBHOOK_ALLOW_HTTP")?,
        allow_private: flag("TESSERA_WEBHOOK_ALLOW_PRIVATE")?,
    })
}

/// Every `/api/v1` family on one router (the dev server); each Lambda serves one of them.
pub fn router(state: V1State) -> Router {
    jobs::router(state.clone())
        .merge(users::router(state.clone()))
        .merge(webhooks::router(state.clone()))
        .merge(models::router(state))
}

/// Wraps a family's routes in the v1 auth layer and the per-plan request limit.
pub(crate) fn protected(routes: Router<V1State>, state: V1State) -> Router {
    let guard = Guard {
        service: state.auth.clone(),
        accepts: Accepts::Users,
        render: error::v1_style,
    };
    routes
        .layer(from_fn_with_state(state.clone(), plan_limit))
        .layer(from_fn_with_state(guard, authenticate))
        .with_state(state)
}

/// Middleware: loads the caller's tenant (for the handlers), and counts the request against its
/// plan's requests per minute, answering 429 `RATE_LIMITED` with `retry_after` over it.
async fn plan_limit(State(state): State<V1State>, mut request: Request, next: Next) -> Response {
    let Some(tenant_id) = request
        .extensions()
        .get::<Principal>()
        .and_then(Principal::tenant_id)
        .cloned()
    else {
        return ApiError::from(crate::auth::AuthError::Unauthenticated("no tenant")).into_response();
    };
    let tenant = match state.auth.accounts().tenant(&tenant_id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => {
            return ApiError::from(crate::auth::AuthError::Unauthenticated("the account no longer exists"))
                .into_response();
        }
        Err(error) => return ApiError::from(error).into_response(),
    };
    let plan = state.catalog.plan(tenant.plan);
    let rule = Rule::new("v1", plan.requests_per_minute, 60);
    let decision = match state.auth.limiter().hit(rule, tenant_id.as_str()).await {
        Ok(decision) => decision,
        Err(error) => {
            tracing::error!(%error, "rate limiter unavailable: letting the request through");
            request.extensions_mut().insert(tenant);
            return next.run(request).await;
        }
    };
    let mut response = if decision.allowed {
        request.extensions_mut().insert(tenant);
        next.run(request).await
    } else {
        let details = format!(
            "You can make {} requests per minute. Retry after {} seconds.",
            rule.limit, decision.retry_after
        );
        ApiError::rate_limited("Rate limit exceeded", details, decision.retry_after).into_response()
    };
    decision.write_headers(response.headers_mut());
    response
}
