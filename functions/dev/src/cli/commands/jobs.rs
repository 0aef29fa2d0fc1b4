//! `tessera jobs ls|get|cancel|wait`.

use serde_json::Value;
use tokio::signal::unix::{SignalKind, signal};

use super::Context;
use super::imagine::finish;
use crate::cli::args::{JobsCommand, ListJobsArgs};
use crate::cli::client::Call;
use crate::cli::error::CliError;
use crate::cli::follow;
use crate::cli::output::{Outcome, cell, pretty, rows, table};
use crate::cli::progress::Progress;

/// Runs one `jobs` command.
pub async fn run(command: JobsCommand, context: &Context) -> Result<Outcome, CliError> {
    match command {
        JobsCommand::Ls(args) => list(args, context).await,
        JobsCommand::Get { job_id } => {
            let view = context.client()?.json(Call::get(job_path(&job_id)?)).await?;
            let text = pretty(&view);
            Ok(Outcome::success(view, text))
        }
        JobsCommand::Cancel { job_id } => {
            let answer = context.client()?.json(Call::delete(job_path(&job_id)?)).await?;
            let refund = answer
                .get("refund_tokens")
                .map_or_else(|| "no".to_owned(), Value::to_string);
            let text = format!("{job_id} cancelled; {refund} tokens refunded");
            Ok(Outcome::success(answer, text))
        }
        JobsCommand::Wait { job_id, out } => {
            job_path(&job_id)?;
            let mut interrupt =
                signal(SignalKind::interrupt()).map_err(|error| CliError::local("listening for Ctrl-C", error))?;
            let mut client = context.client()?;
            let mut progress = Progress::for_stderr();
            let view = follow::until_final_or_interrupted(&mut client, &job_id, &mut progress, &mut interrupt).await?;
            progress.clear();
            finish(&client, view, out.as_deref()).await
        }
    }
}

/// `/api/v1/jobs/{id}`, for an id that can be put in a path.
fn job_path(job_id: &str) -> Result<String, CliError> {
    let fits = !job_id.is_empty()
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    match fits {
        true => Ok(format!("/api/v1/jobs/{job_id}")),
        false => Err(CliError::Usage(format!(
            "{job_id:?} is not a job id (like job_abc123def456)"
        ))),
    }
}

/// `GET /api/v1/jobs` with the filters, as a table.
async fn list(args: ListJobsArgs, context: &Context) -> Result<Outcome, CliError> {
    let call = Call::get("/api/v1/jobs")
        .query("status", args.status.map(|status| status.as_str()))
        .query("capability", args.capability.map(|capability| capability.as_str()))
        .query("since", args.since)
        .query("limit", args.limit)
        .query("offset", args.offset);
    let page = context.client()?.json(call).await?;
    let jobs = rows(&page, "jobs");
    let table_rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            ["job_id", "status", "capability", "created_at", "completed_at"]
                .iter()
                .map(|field| cell(job, field))
                .collect()
        })
        .collect();
    let mut text = table(&["ID", "STATUS", "CAPABILITY", "CREATED", "COMPLETED"], &table_rows);
    if page.pointer("/pagination/has_more").and_then(Value::as_bool) == Some(true) {
        let total = page
            .pointer("/pagination/total")
            .map_or_else(String::new, Value::to_string);
        text.push_str(&format!(
            "\n({} of {total} shown; see --limit and --offset)",
            jobs.len()
        ));
    }
    Ok(Outcome::success(page, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_id_goes_into_a_path() {
        assert_eq!(
            job_path("job_abc123def456").expect("id"),
            "/api/v1/jobs/job_abc123def456"
        );
        for bad in ["", "../user/me", "job?x=1", "job/1"] {
            assert!(job_path(bad).is_err(), "{bad}");
        }
    }
}
