//! `tributary up`: broker, registry, topics, workers, projectors and API in
//! one process, with embedded defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use tokio::sync::watch;
use tributary_broker::{LocalBroker, ensure_topics, find_tansu};
use tributary_config::Config;
use tributary_connector_api::ConnectionInfo;
use tributary_connector_sandbox::{Generator, SandboxSettings};
use tributary_producer::{Publisher, StateStore, Worker};

use crate::connections::{self, Admin};
use tributary_projector::{Assignment, ProjectorSettings};
use tributary_schemas::{DataType, Timestamp, all_topics};

/// The broker to use: the configured cluster, or the local one.
pub(crate) fn bootstrap_servers(config: &Config) -> String {
    if config.kafka.bootstrap_servers.is_empty() {
        format!("127.0.0.1:{}", config.broker.port)
    } else {
        config.kafka.bootstrap_servers.clone()
    }
}

/// Client settings every Kafka client of ours starts from.
pub(crate) fn kafka_client(config: &Config, bootstrap: &str) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    for (key, value) in &config.kafka.client {
        client.set(key, value.expose());
    }
    client
}

pub(crate) async fn up(config: Config) -> anyhow::Result<()> {
    tributary_telemetry::init_logging(&config.log)?;
    let metrics = tributary_telemetry::init_metrics()?;
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;

    // Broker: the configured cluster, or a local durable one.
    let (local_broker, bootstrap) = if config.kafka.bootstrap_servers.is_empty() {
        let binary = find_tansu(config.broker.tansu_binary.as_deref())?;
        let broker =
            LocalBroker::start(&binary, &data_dir.join("broker"), config.broker.port).await?;
        let bootstrap = broker.bootstrap_servers().to_string();
        (Some(broker), bootstrap)
    } else {
        (None, config.kafka.bootstrap_servers.clone())
    };
    let client = kafka_client(&config, &bootstrap);

    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    // Registry: the configured one, or the embedded one.
    let registry_url = if config.registry.url.is_empty() {
        let registry = tributary_registry::Registry::open(
            &data_dir.join("registry.db"),
            tributary_registry::Compatibility::Backward,
        )
        .await?;
        let address = SocketAddr::from(([127, 0, 0, 1], config.registry.port));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen for the schema registry on {address}"))?;
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(listener, registry.router())
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await
                .context("schema registry server")
        });
        format!("http://{address}")
    } else {
        config.registry.url.clone()
    };

    ensure_topics(
        &client,
        &all_topics(),
        config.kafka.partitions,
        config.kafka.replication_factor,
    )
    .await?;

    let roles = &config.roles;

    // Connector workers.
    let (publisher, admin) = if roles.workers {
        let admin = Admin::open(&config).await?;
        if config.sandbox.enabled {
            add_sandbox_connections(&admin.state, &config).await?;
        }
        let publisher = Arc::new(Publisher::new(&client, &registry_url)?);
        publisher.register_schemas().await?;
        let mut worker = Worker::new(
            connections::worker_id(&config),
            admin.state.clone(),
            Arc::clone(&admin.registry),
            Arc::clone(&publisher),
            admin.settings.clone(),
            Arc::clone(&admin.cipher),
        );
        // Checks from the API count against the same call limits.
        worker.limiters = Arc::clone(&admin.limiters);
        let worker = Arc::new(worker);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            worker.run(shutdown).await;
            Ok(())
        });
        let admin: Arc<dyn tributary_api::ConnectionAdmin> = Arc::new(admin);
        (Some(publisher), Some(admin))
    } else if roles.api && !config.state.url.expose().is_empty() {
        // No worker here, but a state shared with workers elsewhere: the
        // API manages connections in it, and asks for syncs through it.
        let admin: Arc<dyn tributary_api::ConnectionAdmin> = Arc::new(Admin::open(&config).await?);
        (None, Some(admin))
    } else {
        (None, None)
    };

    // Projectors.
    let topics: Vec<String> = DataType::ALL
        .iter()
        .map(|t| t.topic())
        .chain([tributary_schemas::SyncRunEvent::topic()])
        .collect();
    let projector = |name: &'static str, assignment: Assignment| {
        let settings = ProjectorSettings {
            batch_size: config.projector.batch_size,
            linger: Duration::from_millis(config.projector.linger_ms),
            topics: topics.clone(),
            assignment,
        };
        (
            name,
            client.clone(),
            registry_url.clone(),
            settings,
            shutdown.clone(),
        )
    };
    // The SQL store: PostgreSQL when configured, else SQLite in the data directory.
    let store: Option<Arc<dyn tributary_store::ReadStore>> = if !(roles.store_projector
        || roles.api)
    {
        None
    } else if config.store.url.expose().is_empty() {
        let sqlite = tributary_store_sqlite::SqliteStore::open(&data_dir.join("store.db")).await?;
        if roles.store_projector {
            // One writer: the SQLite file is local to this process.
            spawn_projector(
                &mut tasks,
                projector("SQLite store projector", Assignment::All),
                sqlite.clone(),
            );
        }
        Some(Arc::new(sqlite))
    } else {
        let postgres =
            tributary_store_postgres::PostgresStore::connect(config.store.url.expose()).await?;
        if roles.store_projector {
            let assignment = if config.projector.consumer_group {
                // Any number of processes: they share the partitions in one group.
                Assignment::Group(format!(
                    "tributary-projector-sql-store-{}",
                    postgres.identity().await?
                ))
            } else {
                Assignment::All
            };
            spawn_projector(
                &mut tasks,
                projector("PostgreSQL store projector", assignment),
                postgres.clone(),
            );
        }
        Some(Arc::new(postgres))
    };
    let search = if roles.index_projector || roles.api {
        let (index_projection, search) = tributary_index_tantivy::open(&data_dir.join("index"))?;
        if roles.index_projector {
            spawn_projector(
                &mut tasks,
                projector("search index projector", Assignment::All),
                index_projection,
            );
        }
        Some(Arc::new(search) as Arc<dyn tributary_store::Search>)
    } else {
        None
    };

    // HTTP API.
    let api_address = match (roles.api, store, search) {
        (true, Some(store), Some(search)) => {
            let api_state = tributary_api::ApiState {
                store,
                search,
                metrics: Some(metrics),
                keys: Arc::new(connections::api_keys(&config)?),
                connections: admin,
            };
            let listener = tokio::net::TcpListener::bind(&config.api.listen)
                .await
                .with_context(|| format!("cannot listen for the API on {}", config.api.listen))?;
            let address = listener.local_addr()?;
            let mut stop = shutdown.clone();
            tasks.spawn(async move {
                axum::serve(listener, tributary_api::router(api_state))
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await
                    .context("API server")
            });
            Some(address)
        }
        _ => None,
    };
    if tasks.is_empty() {
        bail!(
            "no role to run: enable at least one of roles.workers, roles.store_projector, roles.index_projector, roles.api"
        );
    }

    println!("tributary is up");
    match api_address {
        Some(address) => {
            println!("  API:      http://{address}/v1/companies");
            println!("  metrics:  http://{address}/metrics");
            if config.api.keys.is_empty() {
                println!(
                    "  API key:  in {} (send it as Authorization: Bearer <key>)",
                    data_dir.join("api-key").display()
                );
            }
        }
        None => println!("  API:      not in this process (roles.api = false)"),
    }
    println!(
        "  roles:    workers={} store_projector={} index_projector={} api={}",
        roles.workers, roles.store_projector, roles.index_projector, roles.api
    );
    println!(
        "  broker:   {bootstrap}{}",
        if local_broker.is_some() {
            " (local)"
        } else {
            ""
        }
    );
    println!("  registry: {registry_url}");
    println!("  data:     {}", data_dir.display());
    println!("Press Ctrl-C to stop.");

    let outcome = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        Some(ended) = tasks.join_next() => match ended {
            Ok(Ok(())) => Err(anyhow::anyhow!("a pipeline task stopped unexpectedly")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow::anyhow!("a pipeline task panicked: {e}")),
        },
    };
    tracing::info!("stopping");
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ended) = tasks.join_next().await {
            if let Ok(Err(e)) = ended {
                tracing::warn!(error = %e, "task ended with an error during shutdown");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some tasks did not stop within 20s");
        tasks.abort_all();
    }
    if let Some(publisher) = publisher {
        let _ = publisher.flush(Duration::from_secs(10));
        // Kafka clients go before the broker, so none of them logs its loss.
        drop(publisher);
    }
    if let Some(broker) = local_broker {
        tokio::task::block_in_place(|| broker.stop(Duration::from_secs(10)));
    }
    outcome
}

type ProjectorParts = (
    &'static str,
    ClientConfig,
    String,
    ProjectorSettings,
    watch::Receiver<bool>,
);

fn spawn_projector<P: tributary_projection::Projection + 'static>(
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    (name, client, url, settings, shutdown): ProjectorParts,
    projection: P,
) {
    tasks.spawn(async move {
        tributary_projector::run(&client, &url, projection, settings, shutdown)
            .await
            .context(name)
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn sandbox_company(i: u32) -> (String, String) {
    (
        format!("sandbox-{:03}", i + 1),
        format!("conn-sandbox-{:03}", i + 1),
    )
}

/// Creates the sandbox companies' connections on first start. Their
/// settings, the epoch included, are stored, so restarts continue the same
/// synthetic history.
async fn add_sandbox_connections(state: &StateStore, config: &Config) -> anyhow::Result<()> {
    let existing = state.connections().await?;
    if existing
        .iter()
        .any(|c| c.info.source == tributary_connector_sandbox::NAME)
    {
        return Ok(());
    }
    let now = Timestamp::now();
    let s = &config.sandbox;
    let settings = SandboxSettings {
        seed: s.seed,
        records: s.records,
        generations: s.generations,
        generation_interval_secs: s.generation_interval_secs,
        epoch_ms: s.epoch_ms.unwrap_or(now.millis()),
        max_page_size: s.max_page_size,
        fail_every: s.fail_every,
        failure: serde_json::from_value(serde_json::Value::String(s.failure.clone()))
            .with_context(|| {
                format!(
                    "sandbox.failure = {:?}: expected rate_limited, server_error or timeout",
                    s.failure
                )
            })?,
    };
    for i in 0..s.companies {
        let (company_id, connection_id) = sandbox_company(i);
        let info = ConnectionInfo {
            connection_id,
            company_id,
            source: tributary_connector_sandbox::NAME.into(),
            settings: serde_json::to_value(&settings)?,
        };
        state.add_connection(&info, now).await?;
    }
    tracing::info!(companies = s.companies, "created sandbox connections");
    Ok(())
}

/// Prints, for each sandbox connection in the state store, the live record
/// count per data type that a complete sync must end with at this moment.
pub(crate) async fn print_sandbox_expectation(config: &Config) -> anyhow::Result<()> {
    if config.state.url.expose().is_empty() {
        let path = config.data_dir.join("state.db");
        if !Path::new(&path).exists() {
            bail!("no state at {}: run `tributary up` first", path.display());
        }
    }
    let state = connections::open_state(config).await?;
    let now = Timestamp::now();
    println!("company\tdata_type\texpected_live_records\tgeneration");
    for stored in state.connections().await? {
        if stored.info.source != tributary_connector_sandbox::NAME {
            continue;
        }
        let settings: SandboxSettings = serde_json::from_value(stored.info.settings.clone())?;
        let generator = Generator::new(settings, &stored.info.company_id);
        let Some(generation) = generator.visible_generation(now) else {
            continue;
        };
        for data_type in tributary_connector_sandbox::DATA_TYPES {
            let n = generator.expected_live(data_type, generation).len();
            println!(
                "{}\t{}\t{}\t{}",
                stored.info.company_id, data_type, n, generation
            );
        }
    }
    Ok(())
}
