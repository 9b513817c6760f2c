//! `tributary`: the one binary. Thin: it wires the crates together.

mod connections;
mod up;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tributary_config::Config;

/// mimalloc rather than glibc's allocator: with librdkafka's and tokio's many
/// threads, glibc kept a growing set of per-thread arenas and the process's
/// memory grew with the records it had handled (453 MB peak at 100,000
/// invoices against 256 MB with arenas capped; docs/BENCHMARKS.md).
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
    /// Make API keys.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Inspect and replay dead letters (needs the broker: `tributary up` running, or kafka.bootstrap_servers).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Subcommand)]
enum ConnectionsAction {
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
    /// Re-encrypt every connection's credentials with the current key (after
    /// moving the old one to security.previous_credentials_keys).
    RotateKey,
    /// Print a new random credentials key (64 hex digits).
    NewKey,
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
enum DlqAction {
    /// List every dead letter: where it is, stage, reason, origin, replays.
    List,
    /// Send decode- and store-stage dead letters back to the topic they came from.
    Replay {
        /// Replay every decode- and store-stage dead letter not replayed by an earlier --all.
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
        Command::Dlq { action } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(dlq(&config, action))
        }
        Command::Connections { action } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(connections_command(&config, action))
        }
        Command::ApiKey {
            action: ApiKeyAction::New { name, companies },
        } => {
            let key = connections::new_api_key();
            println!("key (shown once, keep it secret): {key}");
            println!();
            println!("[[api.keys]]");
            println!("name = {name:?}");
            println!("sha256 = {:?}", tributary_api::hash_key(&key));
            println!("companies = {companies:?}");
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

async fn connections_command(config: &Config, action: ConnectionsAction) -> anyhow::Result<()> {
    use tributary_api::ConnectionAdmin;
    if let ConnectionsAction::NewKey = action {
        println!("{}", tributary_producer::secrets::Key::generate().to_hex());
        return Ok(());
    }
    let admin = connections::Admin::open(config).await?;
    match action {
        ConnectionsAction::Add {
            source,
            company,
            settings,
        } => {
            let mut map = serde_json::Map::new();
            for pair in settings {
                let (k, v) = pair
                    .split_once('=')
                    .with_context(|| format!("--setting {pair:?} is not KEY=VALUE"))?;
                let value = serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.into()));
                map.insert(k.to_string(), value);
            }
            let (view, url) = admin
                .add(&company, &source, serde_json::Value::Object(map))
                .await?;
            println!(
                "added {} ({})",
                view["id"].as_str().unwrap_or_default(),
                view["status"].as_str().unwrap_or_default()
            );
            if let Some(url) = url {
                println!("grant access at: {url}");
            }
        }
        ConnectionsAction::List => {
            println!("id	company	source	status	reason");
            for c in admin.list().await? {
                println!(
                    "{}	{}	{}	{}	{}",
                    c["id"].as_str().unwrap_or_default(),
                    c["company_id"].as_str().unwrap_or_default(),
                    c["source"].as_str().unwrap_or_default(),
                    c["status"].as_str().unwrap_or_default(),
                    c["status_reason"].as_str().unwrap_or_default()
                );
            }
        }
        ConnectionsAction::Check { id } => println!("{id}: {}", admin.check(&id).await?),
        ConnectionsAction::Remove { id } => {
            admin.remove(&id).await?;
            println!("{id}: unlinked, credentials erased");
        }
        ConnectionsAction::Complete {
            source,
            state,
            code,
        } => {
            let view = admin.complete_authorization(&source, &state, &code).await?;
            println!(
                "{}: {}",
                view["id"].as_str().unwrap_or_default(),
                view["status"].as_str().unwrap_or_default()
            );
        }
        ConnectionsAction::RotateKey => {
            let n = admin.rotate_key().await?;
            println!(
                "re-encrypted the credentials of {n} connection(s) with key {}",
                admin.cipher.current_key_id()
            );
        }
        ConnectionsAction::NewKey => {}
    }
    Ok(())
}

fn schema_name(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn dlq(config: &Config, action: DlqAction) -> anyhow::Result<()> {
    use tributary_broker::dead_letters;
    use tributary_schemas::dead_letter as h;
    let client = up::kafka_client(config, &up::bootstrap_servers(config));
    let letters = dead_letters::read_all(&client)
        .await
        .context("cannot read the dead-letter topic (is `tributary up` running?)")?;
    match action {
        DlqAction::List => {
            println!("at\tstage\tprojection\torigin\treplays\treplayed\treason");
            for l in &letters {
                let origin = match l.header(h::STAGE) {
                    "map" => format!("{} {}", l.header(h::CONNECTION_ID), l.header(h::DATA_TYPE)),
                    _ => format!(
                        "{}/{}@{}",
                        l.header(h::SOURCE_TOPIC),
                        l.header(h::SOURCE_PARTITION),
                        l.header(h::SOURCE_OFFSET)
                    ),
                };
                println!(
                    "{}@{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    l.partition,
                    l.offset,
                    l.header(h::STAGE),
                    l.header(h::PROJECTION),
                    origin,
                    l.replays(),
                    if l.replayed { "yes" } else { "no" },
                    l.header(h::REASON)
                );
            }
            eprintln!("{} dead letters", letters.len());
            Ok(())
        }
        DlqAction::Replay { all, at } => {
            if !all && at.is_empty() {
                anyhow::bail!("say which dead letters to replay: --all, or --at PARTITION@OFFSET");
            }
            let wanted: Vec<&dead_letters::DeadLetter> = if all {
                letters
                    .iter()
                    .filter(|l| !l.replayed && ["decode", "store"].contains(&l.header(h::STAGE)))
                    .collect()
            } else {
                at.iter()
                    .map(|spec| {
                        letters
                            .iter()
                            .find(|l| format!("{}@{}", l.partition, l.offset) == *spec)
                            .with_context(|| format!("no dead letter at {spec}"))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let mut refused = 0;
            let mut done = Vec::new();
            // Every projection that failed a message dead-lettered it: send each message back once.
            let mut sent = std::collections::BTreeSet::new();
            for letter in wanted {
                let origin = (
                    letter.header(h::SOURCE_TOPIC).to_string(),
                    letter.header(h::SOURCE_PARTITION).to_string(),
                    letter.header(h::SOURCE_OFFSET).to_string(),
                );
                if !sent.insert(origin) {
                    println!(
                        "skipped {}@{}: the same message is replayed already",
                        letter.partition, letter.offset
                    );
                    done.push((letter.partition, letter.offset));
                    continue;
                }
                match dead_letters::replay(&client, letter).await {
                    Ok(topic) => println!(
                        "replayed {}@{} to {topic} (replay {})",
                        letter.partition,
                        letter.offset,
                        letter.replays() + 1
                    ),
                    Err(dead_letters::ReplayError::Refused(why)) => {
                        refused += 1;
                        println!("refused {}@{}: {why}", letter.partition, letter.offset);
                    }
                    Err(dead_letters::ReplayError::Failed(e)) => {
                        // Stop: what was replayed so far is still marked below.
                        if all {
                            dead_letters::mark_replayed(&client, &done).await?;
                        }
                        return Err(e).context(format!(
                            "replay stopped at {}@{}",
                            letter.partition, letter.offset
                        ));
                    }
                }
                done.push((letter.partition, letter.offset));
            }
            if all {
                // Refused letters count as handled too: --all never retries them.
                dead_letters::mark_replayed(&client, &done).await?;
            }
            if refused > 0 {
                anyhow::bail!("{refused} dead letters were not replayed");
            }
            Ok(())
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
