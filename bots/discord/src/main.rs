//! `cargo run -p tessera-discord`: the interactions endpoint on `DISCORD_LISTEN` with the
//! notify-queue consumer beside it; `cargo run -p tessera-discord -- register [--guild ID]`
//! registers the slash commands (globally, or in one server, where they appear at once).

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera_discord::config::Config;
use tessera_discord::{commands, interactions, notify};

#[derive(Parser)]
#[command(name = "tessera-discord", about = "Tessera's Discord bot")]
struct Cli {
    #[command(subcommand)]
    command: Option<Action>,
}

#[derive(Subcommand)]
enum Action {
    /// Serve the interactions endpoint (the default).
    Serve,
    /// Register the slash commands.
    Register {
        /// Register in this server only (they appear at once) instead of globally.
        #[arg(long)]
        guild: Option<u64>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tessera_chat::notify::init_logs(false);
    let cli = Cli::parse();
    let config = Config::from_env()?;
    let state = Arc::new(tessera_discord::state(&config));
    match cli.command.unwrap_or(Action::Serve) {
        Action::Register { guild } => {
            let count = commands::register(&state.http, guild)
                .await
                .context("registering the commands")?;
            match guild {
                Some(guild) => println!("registered {count} commands in server {guild}"),
                None => println!("registered {count} global commands"),
            }
        }
        Action::Serve => {
            let queue = config.backend.open().await?;
            tokio::spawn(notify::consume(state.clone(), queue));
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            tracing::info!(
                "interactions endpoint on http://{}{}",
                config.listen,
                interactions::INTERACTIONS_PATH
            );
            axum::serve(listener, interactions::router(state)).await?;
        }
    }
    Ok(())
}
