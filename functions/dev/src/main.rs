//! `tessera`: `cargo run` serves everything locally; `cargo run -- bootstrap --aws` creates the
//! tables, queues and buckets on AWS (or moto, or LocalStack); `cargo run -- imagine "a red fox"`
//! and the other client commands talk to a Tessera API.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tessera_core::SystemClock;
use tessera_dev::cli::args::{AdminCommand, Cli, Command, ServerCommand};
use tessera_dev::{BackendKind, Config};
use tessera_store::Definitions;
use tessera_store::aws::AwsStore;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: a request allocates often and on several threads,
/// where glibc's malloc cost about an eighth of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => run_server(ServerCommand::Serve),
        Some(Command::Server(command)) => run_server(command),
        Some(Command::Client(command)) => tessera_dev::cli::main(command, cli.client),
    }
}

/// Runs a server command with its logs; a failure is printed with its causes and exits 1.
fn run_server(command: ServerCommand) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let result = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(server(command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:?}");
            ExitCode::FAILURE
        }
    }
}

async fn server(command: ServerCommand) -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    config.install_catalog()?;
    match command {
        ServerCommand::Serve => {
            let listener = tokio::net::TcpListener::bind(config.addr)
                .await
                .with_context(|| format!("binding {} (set TESSERA_ADDR to use another address)", config.addr))?;
            tessera_dev::serve(&config, listener, tessera_dev::shutdown_signal()).await
        }
        ServerCommand::Bootstrap { aws: true } => {
            let store = AwsStore::from_env(config.naming.clone(), Arc::new(SystemClock)).await?;
            let report = store.bootstrap(&Definitions::tessera()).await?;
            println!("{report}");
            Ok(())
        }
        ServerCommand::Bootstrap { aws: false } => {
            config.backend = BackendKind::Embedded;
            tessera_dev::open_backend(&config, "http://127.0.0.1").await?;
            println!("embedded store ready in {}", config.data_dir.display());
            Ok(())
        }
        ServerCommand::Admin(command) => {
            let backend = tessera_dev::open_backend(&config, "http://127.0.0.1").await?;
            let auth = tessera_dev::auth_service(&config, &backend)?;
            match command {
                AdminCommand::CreateAdmin { email, name, password } => {
                    tessera_dev::accounts::create_admin(&auth, &email, &name, password).await
                }
                AdminCommand::CreateServiceKey { name } => {
                    tessera_dev::accounts::create_service_key(&auth, &name).await
                }
            }
        }
    }
}
