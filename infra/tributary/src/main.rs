//! `tributary`: the one binary. Thin: it parses arguments and starts
//! roles (`up`) or runs a command; `wiring` turns configuration into the
//! crates' types, `connectors` is the one list of connectors.

mod commands;
mod connectors;
mod sandbox;
mod up;
mod wiring;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tributary_config::Config;

/// mimalloc rather than glibc's allocator: with librdkafka's and tokio's many
/// threads, glibc kept a growing set of per-thread arenas and the process's
/// memory grew with the records it had handled (453 MB peak at 100,000
/// invoices against 256 MB with arenas capped; docs/BENCHMARKS.md).
/// Feature `system-allocator` leaves malloc in place, for heap profilers
/// that follow only malloc (heaptrack; docs/BENCHMARKS.md, "Memory").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Add, list, check and remove connections to sources (works on the
    /// state store in the data directory; `tributary up` may be running).
    Connections {
        #[command(subcommand)]
        action: ConnectionsAction,
    },
    /// Ask for a sync or resync of one company now, and read its sync history
    /// (works on the state store; the workers of `tributary up` run it).
    Syncs {
        #[command(subcommand)]
        action: SyncsAction,
    },
    /// Make API keys.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Outbound webhooks: subscribe, test, read the delivery log, replay
    /// (works on the state store; the dispatcher of `tributary up` sends).
    Webhooks {
        #[command(subcommand)]
        action: WebhooksAction,
    },
    /// Inspect and replay dead letters (needs the broker: `tributary up` running, or kafka.bootstrap_servers).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConnectionsAction {
    /// Add a connection; for OAuth2 sources, prints the URL where a person grants access.
    Add {
        /// The connector, for example `xero` or `sandbox`.
        source: String,
        #[arg(long)]
        company: String,
        /// A connector setting (repeatable), for example `--setting tenant_id=...`.
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// List connections and their status.
    List,
    /// Authenticate and fetch one page, publishing nothing.
    Check { id: String },
    /// Unlink a connection: it stops syncing and its credentials are erased.
    Remove { id: String },
    /// Finish an OAuth2 authorization by hand, with the `code` and `state`
    /// from the URL the source redirected to.
    Complete {
        #[arg(long)]
        source: String,
        #[arg(long)]
        state: String,
        #[arg(long)]
        code: String,
    },
    /// Show a connection's sync settings per data type, or change its
    /// overrides of the configuration's: `--order`, or one `--data-type`'s
    /// `--interval-secs`, `--reconcile-hours`, `--enabled`.
    Settings {
        id: String,
        /// Data types fetched first, in this order (comma-separated).
        #[arg(long, value_delimiter = ',')]
        order: Option<Vec<String>>,
        /// The data type the next options set.
        #[arg(long, requires = "type_setting")]
        data_type: Option<String>,
        #[arg(long, group = "type_setting", requires = "data_type")]
        interval_secs: Option<f64>,
        #[arg(long, group = "type_setting", requires = "data_type")]
        reconcile_hours: Option<f64>,
        #[arg(long, group = "type_setting", requires = "data_type")]
        enabled: Option<bool>,
        /// Drop every override: the configuration's settings apply.
        #[arg(long, conflicts_with_all = ["order", "data_type"])]
        clear: bool,
    },
    /// Re-encrypt every connection's credentials with the current key (after
    /// moving the old one to security.previous_credentials_keys).
    RotateKey,
    /// Print a new random credentials key (64 hex digits).
    NewKey,
}

#[derive(Subcommand)]
pub(crate) enum SyncsAction {
    /// Queue a sync of one company now (from the cursor), or with --resync
    /// fetch everything again; prints the queued runs.
    Request {
        company: String,
        /// A data type to sync (repeatable); none: every type its sources offer.
        #[arg(long = "data-type", value_name = "DATA_TYPE")]
        data_types: Vec<String>,
        /// Forget the cursor and fetch everything again; the records replace
        /// what the stores hold even at the same version.
        #[arg(long, conflicts_with = "reconcile")]
        resync: bool,
        /// A full pass that publishes a tombstone for every record the
        /// source no longer lists (the cursor stays).
        #[arg(long)]
        reconcile: bool,
    },
    /// Queue fetching one record again from its source, by its source id
    /// (for sources that can fetch one record).
    Refetch {
        company: String,
        #[arg(long)]
        data_type: String,
        #[arg(long)]
        id: String,
    },
    /// A company's sync history, newest first.
    List {
        company: String,
        #[arg(long)]
        data_type: Option<String>,
        /// queued, fetching, publishing, succeeded, failed or paused.
        #[arg(long)]
        status: Option<String>,
        /// schedule, request or resync.
        #[arg(long)]
        trigger: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One run: its states with their times, counts and error.
    Show { company: String, run: String },
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Make a key: prints it once, and the [[api.keys]] entry (its hash) for the config.
    New {
        #[arg(long)]
        name: String,
        /// Companies the key may read, comma-separated; `*` for all.
        #[arg(long, value_delimiter = ',', required = true)]
        companies: Vec<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum WebhooksAction {
    /// Subscribe a URL; prints the signing secret, once.
    Add {
        #[arg(long)]
        url: String,
        /// Event types, comma-separated: sync.completed, sync.failed,
        /// connection.status_changed, dead_letters.added, webhook.test.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Only this company's events (default: every company's).
        #[arg(long)]
        company: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List subscriptions (removed ones too) with their deliveries by status.
    List,
    /// Remove a subscription: nothing more is sent, pending deliveries are
    /// cancelled; its log stays.
    Remove { id: String },
    /// Queue a webhook.test event to a subscription.
    Test { id: String },
    /// A subscription's deliveries, newest first; or one delivery with its
    /// attempts (--delivery).
    Deliveries {
        /// The subscription.
        id: Option<String>,
        /// pending, delivered, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Show this delivery and its attempts.
        #[arg(long, conflicts_with_all = ["id", "status"])]
        delivery: Option<String>,
    },
    /// Send a delivery again, with the same webhook-id.
    Replay { delivery: String },
}

#[derive(Subcommand)]
pub(crate) enum DlqAction {
    /// List every dead letter: where it is, stage, reason, origin, replays.
    List,
    /// Replay dead letters: a map-stage record is mapped again with the
    /// connector as it is now and published; a decode- or store-stage
    /// message is sent back to the topic it came from.
    Replay {
        /// Replay every dead letter not replayed by an earlier --all (those
        /// still failing stay, to be replayed after a fix).
        #[arg(long, conflicts_with = "at")]
        all: bool,
        /// Replay the dead letter at PARTITION@OFFSET of the dead-letter topic (repeatable).
        #[arg(long, value_name = "PARTITION@OFFSET")]
        at: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Up) {
        quiet_on_closed_stdout();
    }
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
            commands::topics();
            Ok(())
        }
        Command::Dlq { action } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(commands::dlq(&config, action))
        }
        Command::Connections { action } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(commands::connections(&config, action))
        }
        Command::Webhooks { action } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(commands::webhooks(&config, action))
        }
        Command::Syncs { action } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(commands::syncs(&config, action))
        }
        Command::ApiKey {
            action: ApiKeyAction::New { name, companies },
        } => {
            commands::new_api_key(&name, &companies);
            Ok(())
        }
        Command::SandboxExpect => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(sandbox::print_sandbox_expectation(&config))
        }
    }
}

/// A command piped into `head` ends quietly, as Unix tools do, instead of
/// panicking on the closed pipe. Not for `up`: its network clients expect
/// SIGPIPE ignored, as Rust sets it.
#[allow(unsafe_code)]
fn quiet_on_closed_stdout() {
    // SAFETY: sets one signal's disposition at start-up, before any other
    // thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
