//! The `users` family: `GET /api/v1/user/me` and `GET /api/v1/user/usage`, served from the
//! daily usage counters that every job moves (never by scanning jobs).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tessera_core::{Principal, Tokens};
use tessera_store::accounts::TenantRecord;
use time::{Date, Month};

use super::jobs::utc_day;
use super::{ApiError, V1State, protected, schemas};
use crate::auth::routes::{plan_view, timestamp};
use crate::openapi::{ErrorBody, V1Refusals};

/// The longest usage range, in days.
const MAX_USAGE_DAYS: i64 = 366;
/// The usage range when none is given, in days (ending today).
const DEFAULT_USAGE_DAYS: i64 = 30;

/// The users family's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(me, usage),
    components(schemas(
        schemas::UserMe,
        schemas::PlanView,
        schemas::TodayUsage,
        schemas::UsageHistory,
        schemas::UsageDay,
        schemas::UsageTotal
    ))
)]
pub struct UsersApi;

/// The family's routes.
pub fn router(state: V1State) -> Router {
    let routes = Router::new()
        .route("/api/v1/user/me", get(me))
        .route("/api/v1/user/usage", get(usage));
    protected(routes, state)
}

/// The caller, the tenant's plan, and today's tokens.
#[utoipa::path(
    get,
    path = "/api/v1/user/me",
    tag = "users",
    operation_id = "get_user_me",
    security(("bearer" = []), ("api_key_header" = [])),
    responses((status = 200, description = "The caller.", body = schemas::UserMe), V1Refusals)
)]
async fn me(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
) -> Result<Json<Value>, ApiError> {
    let gone = || ApiError::from(crate::auth::AuthError::Unauthenticated("the account no longer exists"));
    let user_id = principal.user_id().ok_or_else(gone)?;
    let user = state.auth.accounts().user(user_id).await?.ok_or_else(gone)?;
    let now = state.now();
    let used = state.tokens_used_today(&tenant.id).await?;
    let limit = Tokens::whole(state.catalog.plan(tenant.plan).daily_token_limit).0;
    let tomorrow = now - now.rem_euclid(86_400) + 86_400;
    Ok(Json(json!({
        "user_id": user.id,
        "email": user.email,
        "plan": plan_view(tenant.plan),
        "usage": {
            "tokens_used_today": Tokens(used),
            "tokens_remaining_today": Tokens(limit.saturating_sub(used)),
            "reset_at": timestamp(tomorrow),
        },
        "created_at": timestamp(user.created_at),
    })))
}

#[derive(Deserialize)]
struct Range {
    start_date: Option<String>,
    end_date: Option<String>,
}

/// Usage per day over a range (default: the last 30 days; at most 366), from the daily
/// counters.
#[utoipa::path(
    get,
    path = "/api/v1/user/usage",
    tag = "users",
    operation_id = "get_user_usage",
    params(
        ("start_date" = Option<String>, Query, description = "The first day, YYYY-MM-DD (default: 29 days before end_date).", example = "2025-12-01"),
        ("end_date" = Option<String>, Query, description = "The last day, YYYY-MM-DD (default: today, UTC).", example = "2025-12-17"),
    ),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "One row per day with activity.", body = schemas::UsageHistory),
        (status = 400, description = "`INVALID_PARAMS`: a date is not valid, or the range is reversed or too long.", body = ErrorBody),
        V1Refusals,
    )
)]
async fn usage(
    State(state): State<V1State>,
    Extension(tenant): Extension<TenantRecord>,
    range: Result<Query<Range>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(range) = range.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let today = date(&utc_day(state.now()), "today")?;
    let end = range
        .end_date
        .as_deref()
        .map(|raw| date(raw, "end_date"))
        .transpose()?
        .unwrap_or(today);
    let start = match range.start_date.as_deref() {
        Some(raw) => date(raw, "start_date")?,
        None => end - time::Duration::days(DEFAULT_USAGE_DAYS - 1),
    };
    let days = (end - start).whole_days() + 1;
    if days < 1 {
        return Err(ApiError::invalid("start_date", "must not be after end_date"));
    }
    if days > MAX_USAGE_DAYS {
        return Err(ApiError::invalid(
            "start_date",
            format!("the range spans at most {MAX_USAGE_DAYS} days"),
        ));
    }
    let rows = state.jobs.usage(&tenant.id, &iso(start), &iso(end)).await?;
    let (mut tokens, mut completed) = (0_i64, 0_i64);
    let usage: Vec<Value> = rows
        .iter()
        .map(|day| {
            tokens += day.tokens_used;
            completed += day.jobs_completed;
            let breakdown: Map<String, Value> = day
                .breakdown
                .iter()
                .map(|(capability, used)| (capability.to_string(), json!(Tokens(used.max(&0).unsigned_abs()))))
                .collect();
            json!({
                "date": day.date,
                "tokens_used": Tokens(day.tokens_used.max(0) as u64),
                "jobs_completed": day.jobs_completed,
                "jobs_failed": day.jobs_failed,
                "breakdown": breakdown,
            })
        })
        .collect();
    let total_tokens = Tokens(tokens.max(0) as u64);
    Ok(Json(json!({
        "usage": usage,
        "total": {
            "tokens_used": total_tokens,
            "jobs_completed": completed,
            "average_tokens_per_day": (total_tokens.as_decimal() / days as f64 * 1000.0).round() / 1000.0,
        },
    })))
}

fn date(raw: &str, field: &str) -> Result<Date, ApiError> {
    let invalid = || ApiError::invalid(field, "expected an ISO 8601 date, e.g. 2025-12-17");
    let mut parts = raw.splitn(3, '-');
    let mut next = |len: usize| {
        parts
            .next()
            .filter(|part| part.len() == len && part.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|part| part.parse::<i32>().ok())
    };
    let (year, month, day) = (next(4), next(2), next(2));
    let (Some(year), Some(month), Some(day)) = (year, month, day) else {
        return Err(invalid());
    };
    let month = Month::try_from(u8::try_from(month).map_err(|_| invalid())?).map_err(|_| invalid())?;
    Date::from_calendar_date(year, month, u8::try_from(day).map_err(|_| invalid())?).map_err(|_| invalid())
}

fn iso(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}
