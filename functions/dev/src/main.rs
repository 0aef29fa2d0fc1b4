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
    /// Account administration on the configured backend.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let cli = Cli::parse();
    let mut config = Config::from_env()?;
    config.install_catalog()?;
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
        Command::Admin(command) => {
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
        Command::Bootstrap { aws: false } => {
            config.backend = BackendKind::Embedded;
            tessera_dev::open_backend(&config, "http://127.0.0.1").await?;
            println!("embedded store ready in {}", config.data_dir.display());
            Ok(())
        }
    }
}
