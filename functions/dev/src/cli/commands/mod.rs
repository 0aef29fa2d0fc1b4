//! The client commands, each answering an [`Outcome`] for [`super::output`] to print.

pub mod account;
pub mod imagine;
pub mod jobs;
pub mod login;

use std::path::PathBuf;

use super::args::{ClientCommand, ClientOptions};
use super::client::ApiClient;
use super::config_file::{self, ConfigFile, Target};
use super::error::CliError;
use super::output::Outcome;

/// What every command starts from: the options, the config file, and the API they point at.
pub struct Context {
    /// The global options.
    pub options: ClientOptions,
    /// Where the config file is.
    pub config_path: PathBuf,
    /// The API and credential to use.
    pub target: Target,
}

impl Context {
    /// Reads the config file and resolves the API's URL and credential (flags, then variables,
    /// then the file).
    pub fn load(options: ClientOptions) -> Result<Self, CliError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let config_path = config_file::default_path(lookup)?;
        let file = ConfigFile::load(&config_path)?;
        let target = config_file::resolve(options.api_url.as_deref(), options.api_key.as_deref(), lookup, &file);
        Ok(Self {
            options,
            config_path,
            target,
        })
    }

    /// A client of the resolved API, keeping renewed sessions in the config file.
    pub fn client(&self) -> Result<ApiClient, CliError> {
        ApiClient::new(self.target.clone(), Some(self.config_path.clone()))
    }
}

/// Runs one client command.
pub async fn run(command: ClientCommand, context: &Context) -> Result<Outcome, CliError> {
    match command {
        ClientCommand::Login(args) => login::login(args, context).await,
        ClientCommand::Logout => login::logout(context).await,
        ClientCommand::Imagine(args) => imagine::imagine(args, context).await,
        ClientCommand::Jobs(command) => jobs::run(command, context).await,
        ClientCommand::Models(args) => account::models(args, context).await,
        ClientCommand::Usage(args) => account::usage(args, context).await,
        ClientCommand::Keys(command) => account::keys(command, context).await,
    }
}
