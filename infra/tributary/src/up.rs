//! `tributary up`: the roles this process runs (`[roles]`), each started by
//! one function, around the broker and the registry they need; then wait
//! for Ctrl-C or a failed task, and stop everything in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tributary_api::ApiState;
use tributary_config::Config;
use tributary_connector_api::admin::{ConnectionAdmin, DeadLetterAdmin, WebhookAdmin};
use tributary_kafka::Doorbell;
use tributary_producer::health::HealthSettings;
use tributary_producer::{Admin, Publisher, Redrive, Worker};
use tributary_projection::Projection;
use tributary_projector::{Assignment, ProjectorSettings, Rest};
use tributary_schemas::{DataType, SyncRunEvent};
use tributary_store::{ReadStore, Search};
use tributary_telemetry::{Exposition, Families};

use crate::{sandbox, wiring};

type Tasks = JoinSet<anyhow::Result<()>>;

/// What every role gets: the Kafka client settings, the registry, the
/// shutdown signal, and the task set it adds its tasks to.
struct Roles<'a> {
    config: &'a Config,
    client: wiring::KafkaClient,
    registry_url: String,
    shutdown: watch::Receiver<bool>,
    tasks: &'a mut Tasks,
    /// Rung by this process's publishers when the workers run here, so
    /// that its projector can rest while nothing is published.
    doorbell: Option<Doorbell>,
    /// What this process's `/metrics` serves.
    metrics: Exposition,
}

pub(crate) async fn up(config: Config) -> anyhow::Result<()> {
    tributary_telemetry::init_logging(&config.log)?;
    let recorder = tributary_telemetry::init_metrics()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut tasks = Tasks::new();
    drain_histograms(&recorder, &shutdown, &mut tasks);
    let metrics = Exposition {
        recorder,
        families: Families::default(),
    };

    let (local_broker, bootstrap) = wiring::start_broker(&config).await?;
    let registry_url = start_registry(&config, &shutdown, &mut tasks).await?;
    let client = wiring::kafka_client(&config, &bootstrap);
    wiring::ensure_topics(&config, &client).await?;

    let mut cx = Roles {
        config: &config,
        client,
        registry_url: registry_url.clone(),
        shutdown,
        tasks: &mut tasks,
        doorbell: config.roles.workers.then(Doorbell::new),
        metrics: metrics.clone(),
    };
    let roles = &config.roles;
    let (publisher, admin) = if roles.workers {
        let (publisher, admin) = start_workers(&mut cx).await?;
        (Some(publisher), Some(admin))
    } else if roles.api && config.state.url.is_some() {
        // No worker here, but a state shared with workers elsewhere: the
        // API manages connections in it, and asks for syncs through it.
        (None, Some(Arc::new(wiring::admin(&config).await?)))
    } else {
        (None, None)
    };
    // Dead letters of every stage, replayed with this process's connectors.
    let dead_letters: Option<Arc<dyn DeadLetterAdmin>> = match (&admin, &publisher) {
        (Some(admin), publisher) if roles.api => {
            let publisher = match publisher {
                Some(p) => Arc::clone(p),
                None => Arc::new(cx.publisher()?),
            };
            Some(Arc::new(Redrive::new(cx.client.clone(), publisher, admin)))
        }
        _ => None,
    };
    let webhooks: Option<Arc<dyn WebhookAdmin>> = admin
        .as_ref()
        .map(|a| Arc::new(wiring::webhooks(&config, a)) as Arc<dyn WebhookAdmin>);
    if roles.dispatcher {
        match &admin {
            Some(admin) => start_dispatcher(&mut cx, admin).await?,
            None => start_dispatcher(&mut cx, &wiring::admin(&config).await?).await?,
        }
    }
    let admin = admin.map(|a| a as Arc<dyn ConnectionAdmin>);
    let (store, search) = start_projections(&mut cx).await?;
    let api_address = match (roles.api, store, search) {
        (true, Some(store), Some(search)) => {
            let pipeline = pipeline_history(&mut cx, &config, &metrics)?;
            let state = ApiState {
                store,
                search,
                metrics: Some(metrics),
                keys: Arc::new(wiring::api_keys(&config)?),
                connections: admin,
                dead_letters,
                webhooks,
                pipeline: Some(pipeline),
            };
            Some(start_api(&mut cx, state).await?)
        }
        _ => None,
    };
    let metrics_address = match api_address {
        Some(_) => None,
        None => Some(start_metrics(&mut cx).await?),
    };
    if tasks.is_empty() {
        bail!(
            "no role to run: enable at least one of roles.workers, roles.store_projector, roles.index_projector, roles.api, roles.dispatcher"
        );
    }
    print_where(
        &config,
        api_address,
        metrics_address,
        &bootstrap,
        local_broker.is_some(),
        &registry_url,
    );

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

/// Folds the histograms' recorded samples into their summaries and
/// buckets every few seconds. The exporter keeps every sample until then,
/// and does it by itself only when `/metrics` is scraped: unscraped, a
/// histogram recorded per event grew without bound (docs/BENCHMARKS.md,
/// "Memory").
fn drain_histograms(
    metrics: &tributary_telemetry::PrometheusHandle,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Tasks,
) {
    let (metrics, mut stop) = (metrics.clone(), shutdown.clone());
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => metrics.run_upkeep(),
                _ = stop.changed() => return Ok(()),
            }
        }
    });
}

/// The configured registry, or the embedded one served on `registry.port`.
async fn start_registry(
    config: &Config,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Tasks,
) -> anyhow::Result<String> {
    if let Some(url) = &config.registry.url {
        return Ok(url.clone());
    }
    let registry = tributary_registry::Registry::open(
        &config.data_dir.join("registry.db"),
        tributary_registry::Compatibility::Backward,
    )
    .await?;
    let address = SocketAddr::from(([127, 0, 0, 1], config.registry.port));
    serve(
        address,
        registry.router(),
        "schema registry",
        shutdown,
        tasks,
    )
    .await?;
    Ok(format!("http://{address}"))
}

/// Role `workers`: the connector workers, and the connection admin they
/// share their connector runtime with.
async fn start_workers(cx: &mut Roles<'_>) -> anyhow::Result<(Arc<Publisher>, Arc<Admin>)> {
    let admin = wiring::admin(cx.config).await?;
    if cx.config.sandbox.enabled {
        sandbox::add_sandbox_connections(&admin.state, cx.config).await?;
    }
    let publisher = Arc::new(cx.publisher()?);
    publisher.register_schemas().await?;
    let worker = Arc::new(Worker::of_admin(
        wiring::worker_id(cx.config),
        &admin,
        Arc::clone(&publisher),
    ));
    let shutdown = cx.shutdown.clone();
    cx.tasks.spawn(async move {
        worker.run(shutdown).await;
        Ok(())
    });
    let m = &cx.config.metrics;
    let settings = HealthSettings {
        every: Duration::from_secs_f64(m.health_every_secs),
        series: m.sync_age_series,
        stale_after: Duration::from_secs(m.stale_after_secs),
    };
    let (state, families, shutdown) = (
        admin.state.clone(),
        cx.metrics.families.clone(),
        cx.shutdown.clone(),
    );
    cx.tasks.spawn(async move {
        tributary_producer::health::watch(state, families, settings, shutdown)
            .await
            .context("per-tenant health")
    });
    Ok((publisher, Arc::new(admin)))
}

/// Role `dispatcher`: the outbox projector (queues webhook deliveries
/// from the sync runs, connections, dead-letter and manifests topics), the
/// reconciler (checks the store against each manifest) and the dispatcher
/// that sends what is queued.
async fn start_dispatcher(cx: &mut Roles<'_>, admin: &Admin) -> anyhow::Result<()> {
    let w = cx.config.webhooks.clone();
    let clock = tributary_webhooks::Clock::start();
    let wake = Arc::new(tokio::sync::Notify::new());
    let grace = Duration::from_secs_f64(w.reconcile_after_secs);
    let outbox =
        tributary_webhooks::Outbox::new(admin.state.clone(), clock, Arc::clone(&wake), grace);
    let assignment = if cx.config.projector.consumer_group {
        Assignment::Group("tributary-webhooks".into())
    } else {
        Assignment::All
    };
    spawn_projector(
        cx,
        assignment,
        vec![Box::new(outbox)],
        tributary_webhooks::topics(),
    );
    let timeout = Duration::from_secs_f64(w.timeout_secs);
    let policy = tributary_connector_http::NetworkPolicy {
        allow_private: cx.config.security.allow_private_network,
    };
    let transport = tributary_webhooks::HttpTransport::new(policy, timeout)
        .map_err(|e| anyhow::anyhow!("webhook dispatcher: {e}"))?;
    let dispatcher = Arc::new(tributary_webhooks::Dispatcher {
        store: Arc::new(admin.state.clone()),
        cipher: Arc::clone(&admin.cipher),
        transport: Arc::new(transport),
        settings: tributary_webhooks::DispatchSettings {
            owner: format!("{}#dispatcher", wiring::worker_id(cx.config)),
            schedule: w
                .retry_schedule_secs
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect(),
            timeout,
            batch: 10,
            poll: Duration::from_millis(w.poll_ms),
            keep: Duration::from_secs_f64(w.log_days * 86_400.0),
        },
        clock,
        wake: Arc::clone(&wake),
    });
    let shutdown = cx.shutdown.clone();
    cx.tasks.spawn(async move {
        dispatcher.run(shutdown).await;
        Ok(())
    });
    let reconciler = tributary_webhooks::reconcile::Reconciler {
        state: admin.state.clone(),
        store: wiring::open_store(cx.config).await?.read,
        clock,
        grace,
        every: Duration::from_secs(5).min(grace),
        wake,
    };
    let shutdown = cx.shutdown.clone();
    cx.tasks.spawn(async move {
        reconciler.run(shutdown).await;
        Ok(())
    });
    Ok(())
}

impl Roles<'_> {
    /// A publisher that rings this process's doorbell.
    fn publisher(&self) -> anyhow::Result<Publisher> {
        let publisher = Publisher::new(&self.client, &self.registry_url)?;
        Ok(match &self.doorbell {
            Some(doorbell) => publisher.ring_on_publish(doorbell.clone()),
            None => publisher,
        })
    }
}

/// Roles `store_projector` and `index_projector`, and the store and index
/// the API reads. Where both run here and the store reads every partition,
/// one consumer feeds both (one fetch and one decode per message, each its
/// own checkpoint); a store sharing partitions in a consumer group reads
/// apart from the index, which reads them all.
async fn start_projections(
    cx: &mut Roles<'_>,
) -> anyhow::Result<(Option<Arc<dyn ReadStore>>, Option<Arc<dyn Search>>)> {
    let roles = cx.config.roles.clone();
    let mut together: Vec<Box<dyn Projection>> = Vec::new();
    let store = if roles.store_projector || roles.api {
        let store = wiring::open_store(cx.config).await?;
        if roles.store_projector {
            match store.assignment {
                Assignment::All => together.push(store.projection),
                group => spawn_projector(cx, group, vec![store.projection], data_topics()),
            }
        }
        Some(store.read)
    } else {
        None
    };
    let search = if roles.index_projector || roles.api {
        let (search, projection) = wiring::open_index(cx.config)?;
        if roles.index_projector {
            together.push(projection);
        }
        Some(search)
    } else {
        None
    };
    if !together.is_empty() {
        spawn_projector(cx, Assignment::All, together, data_topics());
    }
    Ok((store, search))
}

/// What the store and the index read: every data type and the sync runs.
fn data_topics() -> Vec<String> {
    DataType::ALL
        .iter()
        .map(|t| t.topic())
        .chain([SyncRunEvent::topic()])
        .collect()
}

/// The console's pipeline charts: from `api.prometheus_url`, else from
/// this process's metrics, sampled from now on.
fn pipeline_history(
    cx: &mut Roles<'_>,
    config: &Config,
    metrics: &Exposition,
) -> anyhow::Result<Arc<dyn tributary_api::pipeline::PipelineHistory>> {
    use tributary_api::pipeline::{ProcessHistory, PrometheusHistory};
    if let Some(url) = &config.api.prometheus_url {
        let history =
            PrometheusHistory::new(url).map_err(|e| anyhow::anyhow!("api.prometheus_url: {e}"))?;
        return Ok(Arc::new(history));
    }
    let history = ProcessHistory::default();
    let sampler = history.clone();
    let metrics = metrics.clone();
    let shutdown = cx.shutdown.clone();
    cx.tasks.spawn(async move {
        sampler.run(move || metrics.render(), shutdown).await;
        Ok(())
    });
    Ok(Arc::new(history))
}

/// Role `api`: the HTTP API on `api.listen`.
async fn start_api(cx: &mut Roles<'_>, state: ApiState) -> anyhow::Result<SocketAddr> {
    let router = tributary_api::router(state).merge(tributary_console::router());
    let listen = cx.config.api.listen.clone();
    let address = listen
        .parse()
        .with_context(|| format!("api.listen = {listen:?} is not an address"))?;
    serve(address, router, "API", &cx.shutdown, cx.tasks).await
}

/// `/metrics` on `metrics.listen`, for a process without the API.
async fn start_metrics(cx: &mut Roles<'_>) -> anyhow::Result<SocketAddr> {
    let metrics = cx.metrics.clone();
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = metrics.render();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    text,
                )
            }
        }),
    );
    let listen = cx.config.metrics.listen.clone();
    let address = listen
        .parse()
        .with_context(|| format!("metrics.listen = {listen:?} is not an address"))?;
    serve(address, router, "metrics", &cx.shutdown, cx.tasks).await
}

/// Serves `router` on `address` until shutdown; the address it got.
async fn serve(
    address: SocketAddr,
    router: axum::Router,
    what: &'static str,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Tasks,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for the {what} on {address}"))?;
    let bound = listener.local_addr()?;
    let mut stop = shutdown.clone();
    tasks.spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
            .context(what)
    });
    Ok(bound)
}

fn spawn_projector(
    cx: &mut Roles<'_>,
    assignment: Assignment,
    projections: Vec<Box<dyn Projection>>,
    topics: Vec<String>,
) {
    let config = &cx.config.projector;
    let rest = match &cx.doorbell {
        Some(doorbell) if config.rest_after_ms > 0 => Some(Rest {
            after: Duration::from_millis(config.rest_after_ms),
            poll: Duration::from_millis(config.rest_poll_ms),
            wake: doorbell.listener(),
        }),
        _ => None,
    };
    let settings = ProjectorSettings {
        batch_size: config.batch_size,
        linger: Duration::from_millis(config.linger_ms),
        topics,
        assignment,
        rest,
    };
    let name = projections
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(" and ");
    let (client, url, shutdown) = (
        cx.client.clone(),
        cx.registry_url.clone(),
        cx.shutdown.clone(),
    );
    cx.tasks.spawn(async move {
        tributary_projector::run(&client, &url, projections, settings, shutdown)
            .await
            .with_context(|| format!("projector of {name}"))
    });
}

fn print_where(
    config: &Config,
    api: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    bootstrap: &str,
    local_broker: bool,
    registry_url: &str,
) {
    let roles = &config.roles;
    println!("tributary is up");
    match api {
        Some(address) => {
            println!("  API:      http://{address}/v1/companies (described at /openapi.json)");
            if tributary_console::built() {
                println!("  console:  http://{address}/console/ (sign in with an API key)");
            } else {
                println!(
                    "  console:  not built into this binary (npm run build in consumers/tributary-console/web; see http://{address}/console/)"
                );
            }
            println!("  metrics:  http://{address}/metrics");
            if config.api.keys.is_empty() {
                println!(
                    "  API key:  in {} (send it as Authorization: Bearer <key>)",
                    config.data_dir.join("api-key").display()
                );
            }
        }
        None => println!("  API:      not in this process (roles.api = false)"),
    }
    if let Some(address) = metrics {
        println!("  metrics:  http://{address}/metrics");
    }
    println!(
        "  roles:    workers={} store_projector={} index_projector={} api={} dispatcher={}",
        roles.workers, roles.store_projector, roles.index_projector, roles.api, roles.dispatcher
    );
    println!(
        "  broker:   {bootstrap}{}",
        if local_broker { " (local)" } else { "" }
    );
    println!("  registry: {registry_url}");
    println!("  data:     {}", config.data_dir.display());
    println!("Press Ctrl-C to stop.");
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
