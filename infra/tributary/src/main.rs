//! `tributary`: the one binary. Thin: it wires the crates together.

mod up;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tributary_config::Config;

#[derive(Parser)]
#[command(
    name = "tributary",
    version,
    about = "Small-business financial data pipeline"
)]
struct Cli {
    /// Configuration file (TOML); TRIBUTARY__SECTION__KEY variables override it.
    #[arg(long, short, global = true, env = "TRIBUTARY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on this machine until Ctrl-C.
    Up,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// List the topics and the schema of each.
    Topics,
    /// Print what the sandbox says a complete sync holds now, per company and data type.
    SandboxExpect,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("cannot load configuration")?;
    match cli.command {
        Command::Up => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(up::up(config))
        }
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Topics => {
            for data_type in tributary_schemas::DataType::ALL {
                println!(
                    "{}\tkey=company_id\tvalue=io.tributary.v1.{}",
                    data_type.topic(),
                    schema_name(data_type.schema_text())
                );
            }
            println!(
                "{}\tkey=company_id\tvalue=io.tributary.v1.SyncRunEvent",
                tributary_schemas::SyncRunEvent::topic()
            );
            println!(
                "{}\tkey=company_id\tvalue=JSON {{stage, reason, body}}",
                tributary_schemas::dead_letter_topic()
            );
            Ok(())
        }
        Command::SandboxExpect => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(up::print_sandbox_expectation(&config))
        }
    }
}

fn schema_name(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_default()
}
