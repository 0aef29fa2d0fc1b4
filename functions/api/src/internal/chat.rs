//! What a chat bot asks about its users, beyond creating jobs: the models it may offer, a chat
//! user's usage, their active jobs, one of their jobs (to repeat it from a button), and
//! cancelling one. A chat user is named by `user_ref` (`telegram:<id>`); a job of someone else's
//! answers 404, and asking about a chat user never seen before creates nothing.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/internal/models` | `{"models": [...]}` as `GET /api/v1/models` |
//! | `GET /api/internal/chat-users/{user_ref}/usage` | `{plan, tokens_used_today, tokens_remaining_today, daily_token_limit, reset_at}` |
//! | `GET /api/internal/chat-users/{user_ref}/jobs` | `{"jobs": [...]}`: the user's queued and running jobs, newest first |
//! | `GET /api/internal/chat-users/{user_ref}/jobs/{job_id}` | the job's request: `{job_id, status, capability, model, params}` |
//! | `DELETE /api/internal/chat-users/{user_ref}/jobs/{job_id}` | the public cancel's answer |
//! | `GET /api/internal/guilds/{guild_ref}/settings` | a chat server's settings: `{max_steps, allowed_models, daily_jobs_per_user}` (null: the plan decides) |
//! | `PUT /api/internal/guilds/{guild_ref}/settings` | replaces them (the bot checks that its caller administers the server) |

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_core::{JobId, JobStatus, PlanTier, Tokens};
use tessera_store::accounts::TenantRecord;
use tessera_store::guilds::{GuildSettings, Guilds};
use tessera_store::jobs::{DailyCap, JobRecord};

use super::{ServiceJson, path_text, schemas};
use crate::auth::routes::timestamp;
use crate::openapi::ErrorBody;
use crate::v1::{ApiError, V1State};

/// The chat-user routes' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(models, usage, active_jobs, job, cancel, settings, save_settings),
    components(schemas(
        schemas::ChatUserPlan,
        schemas::ChatUserUsage,
        schemas::ChatUserJobs,
        schemas::ActiveJobStatus,
        schemas::ChatActiveJob,
        schemas::ChatUserJob,
        schemas::ChatJobParams,
        schemas::CancelledStatus,
        schemas::ChatJobCancelled,
        schemas::GuildSettingsView,
        schemas::GuildSettingsInput,
    ))
)]
pub struct ChatApi;

/// The routes (the caller adds the service-credential layer).
pub fn routes() -> Router<V1State> {
    Router::new()
        .route("/api/internal/models", get(models))
        .route("/api/internal/chat-users/{user_ref}/usage", get(usage))
        .route("/api/internal/chat-users/{user_ref}/jobs", get(active_jobs))
        .route(
            "/api/internal/chat-users/{user_ref}/jobs/{job_id}",
            get(job).delete(cancel),
        )
        .route(
            "/api/internal/guilds/{guild_ref}/settings",
            get(settings).put(save_settings),
        )
}

/// `discord:<id>` (a server of the frontend), checked.
fn checked_guild(raw: &str) -> Result<String, ApiError> {
    let valid = raw.split_once(':').is_some_and(|(platform, id)| {
        matches!(platform, "discord" | "telegram")
            && !id.is_empty()
            && id.len() <= 32
            && id.bytes().all(|b| b.is_ascii_digit() || b == b'-')
    });
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(
            "guild",
            "expected <platform>:<server id>, e.g. discord:123456789",
        ))
    }
}

/// A chat server's settings.
///
/// The limits a server's managers set for its members' jobs; null leaves the matter to the plan.
#[utoipa::path(
    get,
    path = "/api/internal/guilds/{guild_ref}/settings",
    tag = "internal",
    operation_id = "internal_guild_settings",
    params(("guild_ref" = String, Path, description = "The chat server, `<platform>:<server id>` (digits and `-`, up to 32).", pattern = "^(discord|telegram):[0-9-]{1,32}$", example = "discord:123456789")),
    security(("service_key" = [])),
    responses(
        (status = 200, description = "The settings (all null for a server never set up).", body = schemas::GuildSettingsView),
        (status = 400, description = "`INVALID_PARAMS`: a malformed `guild_ref`.", body = ErrorBody,
            example = json!({"error": {"code": "INVALID_PARAMS", "message": "Invalid parameters",
                "details": {"field": "guild", "reason": "expected <platform>:<server id>, e.g. discord:123456789"}}})),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn settings(
    State(state): State<V1State>,
    guild: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let guild = checked_guild(&path_text(guild))?;
    let settings = Guilds::new(state.items.clone()).settings(&guild).await?;
    Ok(Json(settings_view(&settings)))
}

fn settings_view(settings: &GuildSettings) -> Value {
    json!({
        "max_steps": settings.max_steps,
        "allowed_models": settings.allowed_models,
        "daily_jobs_per_user": settings.daily_jobs_per_user,
    })
}

/// Replaces a chat server's settings.
///
/// The bot checks that its caller manages the server. A setting left out or null leaves the
/// matter to the plan.
#[utoipa::path(
    put,
    path = "/api/internal/guilds/{guild_ref}/settings",
    tag = "internal",
    operation_id = "internal_save_guild_settings",
    params(("guild_ref" = String, Path, description = "The chat server, `<platform>:<server id>` (digits and `-`, up to 32).", pattern = "^(discord|telegram):[0-9-]{1,32}$", example = "discord:123456789")),
    request_body = schemas::GuildSettingsInput,
    security(("service_key" = [])),
    responses(
        (status = 200, description = "The settings now.", body = schemas::GuildSettingsView),
        (status = 400, description = "`INVALID_PARAMS`: a malformed `guild_ref` or JSON, an unknown setting, a number out of range, or an unknown model.",
            body = ErrorBody,
            example = json!({"error": {"code": "INVALID_PARAMS", "message": "Invalid parameters",
                "details": {"field": "max_steps", "reason": "expected a whole number from 1 to 150"}}})),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 413, description = "The body is over 2 MiB (`PAYLOAD_TOO_LARGE`).", body = ErrorBody),
        (status = 415, description = "The body is not `Content-Type: application/json` (`UNSUPPORTED_MEDIA_TYPE`).", body = ErrorBody),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn save_settings(
    State(state): State<V1State>,
    guild: Result<Path<String>, PathRejection>,
    ServiceJson(body): ServiceJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let guild = checked_guild(&path_text(guild))?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::invalid("body", "expected an object"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !matches!(key.as_str(), "max_steps" | "allowed_models" | "daily_jobs_per_user"))
    {
        return Err(ApiError::invalid(unknown, "unknown setting"));
    }
    let bounded = |name: &str, max: u64| -> Result<Option<u32>, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .filter(|n| (1..=max).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| ApiError::invalid(name, format!("expected a whole number from 1 to {max}"))),
        }
    };
    let allowed_models = match fields.get("allowed_models") {
        None | Some(Value::Null) => None,
        Some(Value::Array(ids)) => {
            let mut models = Vec::new();
            for id in ids {
                let id = id.as_str().unwrap_or_default();
                if state.catalog.model(id).is_none() {
                    return Err(ApiError::invalid("allowed_models", format!("unknown model '{id}'")));
                }
                models.push(id.to_owned());
            }
            Some(models).filter(|models| !models.is_empty())
        }
        Some(_) => return Err(ApiError::invalid("allowed_models", "expected a list of model ids")),
    };
    let settings = GuildSettings {
        max_steps: bounded("max_steps", 150)?,
        allowed_models,
        daily_jobs_per_user: bounded("daily_jobs_per_user", 10_000)?,
    };
    Guilds::new(state.items.clone()).save(&guild, &settings).await?;
    tracing::info!(guild, "server settings saved");
    Ok(Json(settings_view(&settings)))
}

/// Applies a chat server's settings to a job request: its steps and model must be allowed, and
/// the member's daily cap (if any) is answered for the creation's transaction.
pub(crate) async fn apply_guild_settings(
    state: &V1State,
    guild: &str,
    frontend: &str,
    user_ref: &str,
    capability: &Value,
    params: &Value,
) -> Result<Option<DailyCap>, ApiError> {
    let guild = checked_guild(guild)?;
    if !guild.starts_with(&format!("{frontend}:")) {
        return Err(ApiError::invalid("guild", format!("expected a {frontend} server")));
    }
    let settings = Guilds::new(state.items.clone()).settings(&guild).await?;
    if let (Some(max), Some(steps)) = (settings.max_steps, params.get("steps").and_then(Value::as_u64))
        && steps > u64::from(max)
    {
        return Err(ApiError::invalid(
            "steps",
            format!("this server allows at most {max} steps"),
        ));
    }
    if let Some(allowed) = &settings.allowed_models {
        let default = capability
            .as_str()
            .and_then(|raw| raw.parse::<tessera_core::Capability>().ok())
            .and_then(|capability| {
                state
                    .catalog
                    .models_for(Some(capability))
                    .first()
                    .map(|model| model.id.clone())
            });
        let model = params
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(default);
        if !model.is_some_and(|model| allowed.contains(&model)) {
            return Err(ApiError::invalid(
                "model",
                format!("this server allows only {}", allowed.join(", ")),
            ));
        }
    }
    Ok(settings.daily_jobs_per_user.map(|limit| DailyCap {
        scope: format!("{guild}#{user_ref}"),
        limit,
    }))
}

/// The models a bot may offer.
///
/// As `GET /api/v1/models`, without the free canary model.
#[utoipa::path(
    get,
    path = "/api/internal/models",
    tag = "internal",
    operation_id = "internal_list_models",
    security(("service_key" = [])),
    responses(
        (status = 200, description = "The models.", body = crate::v1::schemas::ModelList),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn models(State(state): State<V1State>) -> Json<Value> {
    let offered: Vec<_> = state
        .catalog
        .models_for(None)
        .into_iter()
        .filter(|model| model.cost_multiplier > 0.0)
        .collect();
    Json(json!({ "models": offered }))
}

/// The chat user's tenant, if they were ever seen.
async fn tenant_of(state: &V1State, user_ref: &str) -> Result<Option<TenantRecord>, ApiError> {
    let accounts = state.auth.accounts();
    let Some(user) = accounts.chat_user(user_ref).await? else {
        return Ok(None);
    };
    Ok(accounts.tenant(&user.tenant_id).await?)
}

/// A chat user's tokens today.
///
/// A user never seen answers the Free plan, unused (and is not created).
#[utoipa::path(
    get,
    path = "/api/internal/chat-users/{user_ref}/usage",
    tag = "internal",
    operation_id = "internal_chat_user_usage",
    params(("user_ref" = String, Path, description = "The chat user, `<platform>:<user id>`.", example = "telegram:123456789")),
    security(("service_key" = [])),
    responses(
        (status = 200, description = "Today's tokens.", body = schemas::ChatUserUsage),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn usage(
    State(state): State<V1State>,
    user_ref: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_of(&state, &path_text(user_ref)).await?;
    let tier = tenant.as_ref().map_or(PlanTier::Free, |tenant| tenant.plan);
    let plan = state.catalog.plan(tier);
    let used = match &tenant {
        Some(tenant) => state.tokens_used_today(&tenant.id).await?,
        None => 0,
    };
    let limit = Tokens::whole(plan.daily_token_limit).0;
    let now = state.now();
    Ok(Json(json!({
        "plan": { "id": tier, "name": plan.name },
        "tokens_used_today": Tokens(used),
        "tokens_remaining_today": Tokens(limit.saturating_sub(used)),
        "daily_token_limit": plan.daily_token_limit,
        "reset_at": timestamp(now - now.rem_euclid(86_400) + 86_400),
    })))
}

/// A chat user's active jobs.
///
/// Their queued and running jobs, newest first (none for a user never seen).
#[utoipa::path(
    get,
    path = "/api/internal/chat-users/{user_ref}/jobs",
    tag = "internal",
    operation_id = "internal_chat_user_jobs",
    params(("user_ref" = String, Path, description = "The chat user, `<platform>:<user id>`.", example = "telegram:123456789")),
    security(("service_key" = [])),
    responses(
        (status = 200, description = "The jobs.", body = schemas::ChatUserJobs),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn active_jobs(
    State(state): State<V1State>,
    user_ref: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Some(tenant) = tenant_of(&state, &path_text(user_ref)).await? else {
        return Ok(Json(json!({ "jobs": [] })));
    };
    let mut jobs = Vec::new();
    for job in state.jobs.list_for(&tenant.id, None).await? {
        if !matches!(job.status, JobStatus::Queued | JobStatus::Running) {
            continue;
        }
        let mut row = json!({
            "job_id": job.job_id,
            "status": job.status,
            "model": job.model,
            "prompt": job.params.prompt,
            "progress": job.progress,
            "created_at": timestamp(job.created_at),
        });
        if job.status == JobStatus::Queued {
            row["queue_position"] = json!(state.jobs.queued_ahead(&job).await? + 1);
        }
        jobs.push(row);
    }
    Ok(Json(json!({ "jobs": jobs })))
}

/// The chat user's job with this id; 404 alike for a malformed, missing or foreign one.
async fn users_job(state: &V1State, user_ref: &str, raw_id: &str) -> Result<(TenantRecord, JobRecord), ApiError> {
    let id = JobId::parse(raw_id).map_err(|_| ApiError::job_not_found())?;
    let tenant = tenant_of(state, user_ref).await?.ok_or_else(ApiError::job_not_found)?;
    let job = state
        .jobs
        .get_for(&tenant.id, &id)
        .await?
        .ok_or_else(ApiError::job_not_found)?;
    Ok((tenant, job))
}

/// One of a chat user's jobs.
///
/// What the job asked for, to repeat it (from a button). Someone else's job answers 404.
#[utoipa::path(
    get,
    path = "/api/internal/chat-users/{user_ref}/jobs/{job_id}",
    tag = "internal",
    operation_id = "internal_chat_user_job",
    params(("user_ref" = String, Path, description = "The chat user, `<platform>:<user id>`.", example = "telegram:123456789"), ("job_id" = String, Path, description = "The job's id (`job_` and 12 lowercase letters or digits).", pattern = "^job_[a-z0-9]{12}$", example = "job_abc123def456")),
    security(("service_key" = [])),
    responses(
        (status = 200, description = "The job's request.", body = schemas::ChatUserJob),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 404, description = "`NOT_FOUND`: no such job of this user.", body = ErrorBody,
            example = json!({"error": {"code": "NOT_FOUND", "message": "Job not found", "details": null}})),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn job(
    State(state): State<V1State>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Ok(Path((user_ref, job_id))) = path else {
        return Err(ApiError::job_not_found());
    };
    let (_, job) = users_job(&state, &user_ref, &job_id).await?;
    Ok(Json(json!({
        "job_id": job.job_id,
        "status": job.status,
        "capability": job.capability,
        "model": job.model,
        "params": {
            "prompt": job.params.prompt,
            "negative_prompt": job.params.negative_prompt,
            "resolution": job.params.resolution,
            "steps": job.params.steps,
            "seed": job.params.seed,
            "model": job.model,
        },
    })))
}

/// Cancels one of a chat user's jobs.
///
/// As `DELETE /api/v1/jobs/{job_id}`: the job stops and its tokens are refunded, once.
#[utoipa::path(
    delete,
    path = "/api/internal/chat-users/{user_ref}/jobs/{job_id}",
    tag = "internal",
    operation_id = "internal_cancel_chat_user_job",
    params(("user_ref" = String, Path, description = "The chat user, `<platform>:<user id>`.", example = "telegram:123456789"), ("job_id" = String, Path, description = "The job's id (`job_` and 12 lowercase letters or digits).", pattern = "^job_[a-z0-9]{12}$", example = "job_abc123def456")),
    security(("service_key" = [])),
    responses(
        (status = 200, description = "Cancelled and refunded.", body = schemas::ChatJobCancelled),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 404, description = "`NOT_FOUND`: no such job of this user.", body = ErrorBody,
            example = json!({"error": {"code": "NOT_FOUND", "message": "Job not found", "details": null}})),
        (status = 409, description = "`CONFLICT`: the job is already finished or cancelled (`details.status` says which).",
            body = ErrorBody,
            example = json!({"error": {"code": "CONFLICT", "message": "the job is already COMPLETED", "details": {"status": "COMPLETED"}}})),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn cancel(
    State(state): State<V1State>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Ok(Path((user_ref, job_id))) = path else {
        return Err(ApiError::job_not_found());
    };
    let (tenant, job) = users_job(&state, &user_ref, &job_id).await?;
    crate::v1::jobs::cancel_job(&state, &tenant, job).await.map(Json)
}
