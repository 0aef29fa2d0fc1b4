//! `tessera-dev`: `cargo run` serves everything locally; `cargo run -- bootstrap --aws` creates
//! the tables, queues and buckets on AWS (or moto, or LocalStack).

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera_core::SystemClock;
use tessera_dev::{BackendKind, Config};
use tessera_store::Definitions;
use tessera_store::aws::AwsStore;
use tracing_subscriber::EnvFilter;

/// Tessera's local all-in-one server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every API family on one port (the default).
    Serve,
    /// Create every table, queue and bucket, idempotently.
    Bootstrap {
        /// On AWS (endpoint from AWS_ENDPOINT_URL, if set) instead of the embedded store.
        #[arg(long)]
        aws: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let cli = Cli::parse();
    let mut config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.addr)
                .await
                .with_context(|| format!("binding {} (set TESSERA_ADDR to use another address)", config.addr))?;
            tessera_dev::serve(&config, listener, tessera_dev::shutdown_signal()).await
        }
        Command::Bootstrap { aws: true } => {
            let store = AwsStore::from_env(config.naming.clone(), Arc::new(SystemClock)).await?;
            let report = store.bootstrap(&Definitions::tessera()).await?;
            println!("{report}");
            Ok(())
        }
        Command::Bootstrap { aws: false } => {
            config.backend = BackendKind::Embedded;
            tessera_dev::open_backend(&config, "http://127.0.0.1").await?;
            println!("embedded store ready in {}", config.data_dir.display());
            Ok(())
        }
    }
}
