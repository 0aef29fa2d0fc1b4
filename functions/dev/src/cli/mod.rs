//! The `tessera` command line: its arguments (server and client commands), and the client
//! commands that talk to any Tessera API over HTTP: `login`, `imagine`, `jobs`, `models`,
//! `usage`, `keys`.
//!
//! Results go to stdout (JSON with `--json`); progress and messages go to stderr, as a progress
//! bar on a terminal and as plain lines otherwise. The exit status says what went wrong
//! ([`error::ExitStatus`]).

pub mod args;
pub mod client;
pub mod commands;
pub mod config_file;
pub mod download;
pub mod error;
pub mod follow;
pub mod job;
pub mod output;
pub mod progress;
pub mod sse;

use std::process::ExitCode;

use args::{ClientCommand, ClientOptions};
use error::CliError;

/// Runs a client command to its end and answers the process's exit status.
pub fn main(command: ClientCommand, options: ClientOptions) -> ExitCode {
    let json = options.json;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&CliError::local("starting the async runtime", error), json),
    };
    let result = runtime.block_on(async {
        let context = commands::Context::load(options)?;
        commands::run(command, &context).await
    });
    match result {
        Ok(outcome) => {
            output::print_outcome(&outcome, json);
            ExitCode::from(outcome.status.code())
        }
        Err(error) => fail(&error, json),
    }
}

fn fail(error: &CliError, json: bool) -> ExitCode {
    output::print_failure(error, json);
    ExitCode::from(error.exit_status().code())
}
