//! The command line of the `tessera` binary: the server's commands and the client's.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tessera_core::{Capability, JobStatus, Priority};

use super::error::AFTER_HELP;

/// Tessera: the local all-in-one server (the default command) and a client of any Tessera API.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Where the client commands send their requests, and how.
    #[command(flatten)]
    pub client: ClientOptions,
    /// What to do; `serve` when none is given.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options of every client command.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientOptions {
    /// The API's base URL [env: TESSERA_API_URL] [default: the one `tessera login` stored, else
    /// http://127.0.0.1:8000].
    #[arg(long, global = true, value_name = "URL", help_heading = "Client options")]
    pub api_url: Option<String>,
    /// An API key to send [env: TESSERA_API_KEY] [default: the credential `tessera login` stored].
    #[arg(long, global = true, value_name = "KEY", help_heading = "Client options")]
    pub api_key: Option<String>,
    /// Print machine-readable JSON on stdout (progress and messages stay on stderr).
    #[arg(long, global = true, help_heading = "Client options")]
    pub json: bool,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The server's commands.
    #[command(flatten)]
    Server(ServerCommand),
    /// The client's commands.
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands of the local server.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Serve every API family on one port (the default).
    Serve,
    /// Create every table, queue and bucket, idempotently.
    Bootstrap {
        /// On AWS (endpoint from AWS_ENDPOINT_URL, if set) instead of the embedded store.
        #[arg(long)]
        aws: bool,
    },
    /// Account administration on the configured backend.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `tessera admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform admin (`platform_admin`) with a tenant of their own.
    CreateAdmin {
        /// Their e-mail address.
        #[arg(long)]
        email: String,
        /// Their display name.
        #[arg(long, default_value = "Platform admin")]
        name: String,
        /// Their password; generated and printed once when unset.
        #[arg(long, env = "TESSERA_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Create a service credential (`tessera_svc_...`) for `/api/internal/*`, printed once.
    CreateServiceKey {
        /// The service's name, e.g. `gpu-worker`.
        #[arg(long)]
        name: String,
    },
}

/// The commands that talk to a Tessera API.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Sign in and keep the credential in the config file (mode 0600).
    Login(LoginArgs),
    /// Forget the stored credential (and end the session on the server).
    Logout,
    /// Generate an image: create the job, follow it, download its artifacts.
    Imagine(ImagineArgs),
    /// List, show, cancel and wait for jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The catalog's models, and the plans that may use them.
    Models(ModelsArgs),
    /// Tokens used per day.
    Usage(UsageArgs),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `tessera login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Store an API key instead of signing in with e-mail and password; without a value, the key
    /// is read from stdin (without echo on a terminal).
    #[arg(long = "api-key", id = "api_key", value_name = "KEY", num_args = 0..=1)]
    pub api_key: Option<Option<String>>,
    /// The e-mail to sign in with (asked when not given; from stdin's first line when stdin is
    /// not a terminal, the password on the next).
    #[arg(long)]
    pub email: Option<String>,
}

/// `tessera imagine`.
#[derive(Debug, Args)]
pub struct ImagineArgs {
    /// What to draw.
    pub prompt: String,
    /// The model (default: `TESSERA_MODEL`, else the API's default image model for your plan;
    /// see `tessera models`).
    #[arg(long, env = "TESSERA_MODEL")]
    pub model: Option<String>,
    /// The resolution, WIDTHxHEIGHT, e.g. 1024x1024.
    #[arg(long = "res", value_name = "WxH")]
    pub resolution: Option<String>,
    /// Sampler steps.
    #[arg(long)]
    pub steps: Option<u32>,
    /// The seed (random when not given).
    #[arg(long)]
    pub seed: Option<u64>,
    /// What the image should not show.
    #[arg(long = "negative", value_name = "TEXT")]
    pub negative_prompt: Option<String>,
    /// The job's priority.
    #[arg(long, value_enum)]
    pub priority: Option<PriorityArg>,
    /// Where to save the artifacts, as `<job_id>.<ext>`.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

/// A job's priority.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PriorityArg {
    /// After the others.
    Low,
    /// The default.
    Normal,
    /// First (plans with high priority only).
    High,
}

impl PriorityArg {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        let priority = match self {
            Self::Low => Priority::Low,
            Self::Normal => Priority::Normal,
            Self::High => Priority::High,
        };
        priority.as_str()
    }
}

/// `tessera jobs ...`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Your jobs, newest first, as a table.
    Ls(ListJobsArgs),
    /// One job, as the API shows it (JSON).
    Get {
        /// The job's id.
        job_id: String,
    },
    /// Cancel a queued or running job (its tokens are refunded).
    Cancel {
        /// The job's id.
        job_id: String,
    },
    /// Follow a job until it ends; with --out, download its artifacts.
    Wait {
        /// The job's id.
        job_id: String,
        /// Save the artifacts of a completed job here (nothing is downloaded without it).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// `tessera jobs ls`.
#[derive(Debug, Args)]
pub struct ListJobsArgs {
    /// Only jobs in this state (any case).
    #[arg(long, value_enum, ignore_case = true)]
    pub status: Option<StatusArg>,
    /// Only jobs of this capability.
    #[arg(long, value_enum)]
    pub capability: Option<CapabilityArg>,
    /// Only jobs created after this time (ISO 8601, e.g. 2025-12-17T20:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// How many jobs, 1 to 100 (the API's default: 20).
    #[arg(long)]
    pub limit: Option<u32>,
    /// How many jobs to skip.
    #[arg(long)]
    pub offset: Option<u64>,
}

/// A job's state.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "lower")]
pub enum StatusArg {
    /// Waiting for a worker.
    Queued,
    /// On a worker.
    Running,
    /// Done, with artifacts.
    Completed,
    /// Ended with an error.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl StatusArg {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        let status = match self {
            Self::Queued => JobStatus::Queued,
            Self::Running => JobStatus::Running,
            Self::Completed => JobStatus::Completed,
            Self::Failed => JobStatus::Failed,
            Self::Cancelled => JobStatus::Cancelled,
        };
        status.as_str()
    }
}

/// What a job makes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CapabilityArg {
    /// Images.
    Image,
    /// Videos.
    Video,
    /// Text.
    Text,
    /// Audio.
    Audio,
}

impl CapabilityArg {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        let capability = match self {
            Self::Image => Capability::Image,
            Self::Video => Capability::Video,
            Self::Text => Capability::Text,
            Self::Audio => Capability::Audio,
        };
        capability.as_str()
    }
}

/// `tessera models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Only models of this capability.
    #[arg(long, value_enum)]
    pub capability: Option<CapabilityArg>,
}

/// `tessera usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The first day, YYYY-MM-DD (default: 29 days before the last).
    #[arg(long, value_name = "DATE")]
    pub start: Option<String>,
    /// The last day, YYYY-MM-DD (default: today, UTC).
    #[arg(long, value_name = "DATE")]
    pub end: Option<String>,
}

/// `tessera keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; the key is printed once.
    Create {
        /// A name to recognise it by.
        name: String,
        /// What it may do (repeat for several): jobs:read, jobs:write, projects:read,
        /// projects:write, admin.
        #[arg(long = "scope", value_name = "SCOPE", default_values = ["jobs:read", "jobs:write"])]
        scopes: Vec<String>,
    },
    /// Your API keys (never their secrets).
    Ls,
    /// Revoke an API key.
    Rm {
        /// The key's id (`key_...`).
        key_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_serves_and_client_commands_parse_with_global_options() {
        let cli = Cli::try_parse_from(["tessera"]).expect("parse");
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["tessera", "imagine", "a red fox", "--json", "--api-url", "http://x:1"])
            .expect("parse");
        assert!(cli.client.json);
        assert_eq!(cli.client.api_url.as_deref(), Some("http://x:1"));
        assert!(matches!(
            cli.command,
            Some(Command::Client(ClientCommand::Imagine(ImagineArgs { ref prompt, .. }))) if prompt == "a red fox"
        ));
    }

    #[test]
    fn login_takes_an_api_key_with_or_without_a_value() {
        let login = |args: &[&str]| match Cli::try_parse_from(args).expect("parse").command {
            Some(Command::Client(ClientCommand::Login(login))) => login.api_key,
            other => panic!("not login: {other:?}"),
        };
        assert_eq!(login(&["tessera", "login"]), None);
        assert_eq!(login(&["tessera", "login", "--api-key"]), Some(None));
        assert_eq!(
            login(&["tessera", "login", "--api-key", "tessera_abc"]),
            Some(Some("tessera_abc".into()))
        );
    }

    #[test]
    fn bad_usage_is_refused_with_exit_status_2() {
        for args in [
            &["tessera", "jobs", "ls", "--status", "done"][..],
            &["tessera", "imagine"],
            &["tessera", "nope"],
        ] {
            let error = Cli::try_parse_from(args).expect_err("refused");
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }
}
