#![allow(clippy::unwrap_used)] // a benchmark run stops at its first surprise, saying where
//! `tributary-bench`: Tributary end to end, each stage alone, the raw
//! limits, dlt on the same source, and freshness, in one run, printed as one
//! table. `infra/scripts/bench.sh` builds and runs it; `--quick` is the CI
//! smoke setting (it checks counts, never times).

mod dlt;
mod e2e;
mod freshness;
mod latency;
mod procs;
mod source;
mod stages;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tributary_schemas::DataType;

#[derive(Parser)]
#[command(
    name = "tributary-bench",
    about = "Tributary's benchmark: one run, one table"
)]
struct Args {
    /// Invoices at the source, over all companies.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Companies (Xero tenants), each its own connection.
    #[arg(long, default_value_t = 10)]
    companies: usize,
    /// Line items per invoice.
    #[arg(long, default_value_t = 3)]
    lines: usize,
    /// Records the single-stage measurements use (they hold them in memory).
    #[arg(long, default_value_t = 200_000)]
    stage_records: usize,
    /// Changed records a second during the freshness measurement.
    #[arg(long, default_value_t = 2_000)]
    freshness_rate: u32,
    /// How long the freshness measurement changes records.
    #[arg(long, default_value_t = 30)]
    freshness_secs: u64,
    /// The CI smoke setting: small sizes; checks that everything runs and
    /// every count is right.
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    skip_dlt: bool,
    /// The `tributary` binary (default: beside this one).
    #[arg(long)]
    tributary: Option<PathBuf>,
    /// Where the runs keep their data (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// A librdkafka setting for the single-stage measurements' clients
    /// (publish, consume), as KEY=VALUE; repeatable. For trying producer
    /// settings (linger.ms, batch.size, compression.type) on the same
    /// records.
    #[arg(long = "kafka", value_parser = key_value)]
    kafka: Vec<(String, String)>,
    /// Only the single stages and the limits (no end to end, idle, dlt or
    /// freshness): for trying settings quickly.
    #[arg(long)]
    stages_only: bool,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

struct Row {
    what: String,
    records: usize,
    seconds: f64,
    cpu: Option<f64>,
    rss: Option<u64>,
    note: String,
}

impl Row {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / 1_048_576.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.records = 2_000;
        args.companies = 4;
        args.stage_records = 2_000;
        args.freshness_rate = 200;
        args.freshness_secs = 5;
    }
    let tributary = match &args.tributary {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory for this binary")?
            .join("tributary"),
    };
    anyhow::ensure!(
        tributary.exists(),
        "no tributary binary at {} (build it, or pass --tributary)",
        tributary.display()
    );
    let temp = tempfile::tempdir()?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let cache = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| work.clone())
        .join(".cache/tributary");
    let total = args.records;
    let mut rows: Vec<Row> = Vec::new();
    let bench_started = Instant::now();

    let source = source::Source::start(args.records, args.companies, args.lines).await?;
    eprintln!(
        "bench: source serves {} invoices for {} companies at {}",
        total, args.companies, source.url
    );
    let pg = tokio::task::spawn_blocking(tributary_testkit::PgCluster::start).await?;

    // 1. End to end, SQLite then PostgreSQL.
    let end_to_end = if args.stages_only {
        vec![]
    } else {
        vec![("SQLite", None), ("PostgreSQL", Some(pg.url()))]
    };
    for (store, url) in end_to_end {
        eprintln!("bench: end to end into {store}");
        let run = e2e::run(
            &tributary,
            &source,
            url.as_deref(),
            &work.join(format!("e2e-{}", store.to_lowercase())),
            Duration::from_secs(3600),
        )
        .await?;
        let per_process: Vec<String> = run
            .processes
            .iter()
            .map(|(name, hwm, cpu)| format!("{name} {} MB, {cpu:.1} CPU s", mb(*hwm)))
            .collect();
        let memory_at: Vec<String> = run
            .memory_at
            .iter()
            .map(|(records, peak)| format!("{} MB by {records} stored", mb(*peak)))
            .collect();
        rows.push(Row {
            what: format!("Tributary end to end, {store} store + search index"),
            records: total,
            seconds: run.sync.as_secs_f64(),
            cpu: Some(run.cpu_seconds),
            rss: Some(run.peak_rss),
            note: format!(
                "start {:.1}s; per process: {}; anonymous (heap) part of the total at most {} MB; peak so far: {}",
                run.startup.as_secs_f64(),
                per_process.join("; "),
                mb(run.peak_anon),
                if memory_at.is_empty() { "-".to_string() } else { memory_at.join(", ") }
            ),
        });
    }

    // Idle: a loaded pipeline at the default sync interval, nothing changing.
    let (settle, measure) = if args.quick {
        (Duration::from_secs(2), Duration::from_secs(5))
    } else {
        (Duration::from_secs(20), Duration::from_secs(60))
    };
    if !args.stages_only {
        eprintln!("bench: idle for {}s", measure.as_secs());
        let small = source::Source::start(1_000, args.companies, args.lines).await?;
        let idle = e2e::idle(&tributary, &small, &work.join("idle"), settle, measure).await?;
        let shares: Vec<String> = idle
            .per_process
            .iter()
            .map(|(name, share)| format!("{name} {:.1}%", share * 100.0))
            .collect();
        rows.push(Row {
            what: "idle: 1,000 invoices loaded, sync every 15 s (default), nothing changing".into(),
            records: 0,
            seconds: idle.seconds,
            cpu: Some(idle.total() * idle.seconds),
            rss: None,
            note: format!(
                "{:.1}% of one core: {}",
                idle.total() * 100.0,
                shares.join(", ")
            ),
        });
    }

    // 2 and 3. Each stage alone, and the limits.
    eprintln!("bench: stages");
    let (fetch, events) = stages::fetch_and_map(&source, args.stage_records).await?;
    let n = events.len();
    anyhow::ensure!(n == args.stage_records.min(total), "kept {n} events");
    let (encode, decode, encoded) = stages::avro(&events)?;
    let broker_dir = work.join("stage-broker");
    let tansu = tributary_broker::find_tansu(None)?;
    let port = tributary_testkit::free_port();
    let broker = tributary_broker::LocalBroker::start(&tansu, &broker_dir, port).await?;
    let mut client = rdkafka::ClientConfig::new();
    client.set("bootstrap.servers", broker.bootstrap_servers());
    for (key, value) in &args.kafka {
        client.set(key, value);
    }
    tributary_broker::ensure_topics(
        &client,
        &[DataType::Invoice.topic(), "bench.raw".to_string()],
        6,
        1,
    )
    .await?;
    let registry = tributary_registry::Registry::open(
        &work.join("stage-registry.db"),
        tributary_registry::Compatibility::Backward,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let registry_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, registry.router()).await });
    let (publish, consume) = stages::publish_and_consume(&client, &registry_url, &events).await?;
    let (raw_produce, raw_consume) =
        tokio::task::block_in_place(|| stages::raw_kafka(&client, "bench.raw", &encoded))?;
    let batches = stages::batches(&events, 2000);
    let sqlite = tributary_store_sqlite::SqliteStore::open(&work.join("stage-store.db")).await?;
    let sqlite_apply = stages::apply("store apply, SQLite", sqlite, &batches).await?;
    pg.create_database("stages");
    let stage_url = pg.url_for("stages");
    let postgres = tributary_store_postgres::PostgresStore::connect(&stage_url).await?;
    let pg_apply = stages::apply(
        "store apply, PostgreSQL (UNNEST upsert)",
        postgres,
        &batches,
    )
    .await?;
    let copy = stages::copy(&stage_url, &events).await?;
    let (index, _) = tributary_index_tantivy::open(&work.join("stage-index"))?;
    let index_apply = stages::apply("index apply, tantivy", index, &batches).await?;
    drop(client);
    tokio::task::block_in_place(|| broker.stop(Duration::from_secs(10)));
    for m in [
        &fetch,
        &encode,
        &decode,
        &publish,
        &consume,
        &sqlite_apply,
        &pg_apply,
        &index_apply,
    ] {
        rows.push(Row {
            what: format!("stage: {}", m.name),
            records: m.records,
            seconds: m.seconds,
            cpu: None,
            rss: None,
            note: String::new(),
        });
    }
    for (m, against) in [
        (&copy, &pg_apply),
        (&raw_produce, &publish),
        (&raw_consume, &consume),
    ] {
        rows.push(Row {
            what: format!("limit: {}", m.name.trim_end_matches(" (limit)")),
            records: m.records,
            seconds: m.seconds,
            cpu: None,
            rss: None,
            note: format!(
                "{} is {:.0}% of this",
                against.name,
                100.0 * against.rate() / m.rate()
            ),
        });
    }

    if args.stages_only {
        print_table(&args, &rows, n, bench_started);
        return Ok(());
    }

    // 4. dlt on the same source into the same PostgreSQL.
    if !args.skip_dlt {
        eprintln!("bench: dlt");
        let dlt_db = "dlt";
        pg.create_database(dlt_db);
        let d = dlt::run(&source, &pg.url_for(dlt_db), &cache, &work.join("dlt")).await?;
        anyhow::ensure!(
            d.rows == total as i64,
            "dlt loaded {} invoices of {total}",
            d.rows
        );
        let tributary_pg = rows
            .iter()
            .find(|r| r.what.contains("PostgreSQL store"))
            .map(Row::rate)
            .unwrap_or(0.0);
        let dlt_rate = total as f64 / d.seconds;
        rows.push(Row {
            what: format!("dlt {} REST API source, PostgreSQL", dlt::DLT_VERSION),
            records: total,
            seconds: d.seconds,
            cpu: Some(d.cpu_seconds),
            rss: Some(d.peak_rss),
            note: format!(
                "Tributary end to end into PostgreSQL is {:.1}x this",
                tributary_pg / dlt_rate
            ),
        });
    }

    // 5. Freshness, on a pipeline that has loaded everything (SQLite store).
    eprintln!(
        "bench: freshness at {} changes/s for {} s",
        args.freshness_rate, args.freshness_secs
    );
    let fresh_dir = work.join("freshness");
    let mut pipeline = e2e::start(&tributary, &source, None, &fresh_dir, 0.5)?;
    let started = Instant::now();
    loop {
        let (stored, indexed) = e2e::invoice_counts(&pipeline.api, args.companies).await;
        if stored == total as i64 && indexed == total as i64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "freshness pipeline did not load"
        );
        anyhow::ensure!(
            pipeline.child.try_wait()?.is_none(),
            "freshness pipeline died; see {}",
            fresh_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = latency::scrape(&pipeline.api, e2e::API_KEY).await?;
    let f = freshness::measure(
        &source,
        &pipeline.api,
        args.freshness_rate,
        Duration::from_secs(args.freshness_secs),
    )
    .await;
    let stages = latency::between(
        &before,
        &latency::scrape(&pipeline.api, e2e::API_KEY).await?,
    );
    let _ = pipeline.child.kill();
    let _ = pipeline.child.wait();

    print_table(&args, &rows, n, bench_started);
    println!(
        "| freshness at {} changes/s for {} s | {} | | | | | p50 {} ms, p99 {} ms, max {} ms |",
        args.freshness_rate,
        args.freshness_secs,
        f.changes,
        f.percentile(50.0),
        f.percentile(99.0),
        f.delays.last().copied().unwrap_or(0)
    );
    // The pipeline's own view of the same changes, by stage.
    for (series, what) in [
        (
            "stage_seconds stage=fetch",
            "changed at the source -> its sync's fetch began",
        ),
        (
            "stage_seconds stage=publish",
            "-> produced (fetch, map, bookkeeping, encode)",
        ),
        (
            "stage_seconds stage=deliver",
            "-> read by the projector (broker, fetch wait)",
        ),
        (
            "stage_seconds stage=apply,projection=sql-store",
            "-> committed in the store (batch, apply)",
        ),
        (
            "stage_seconds stage=apply,projection=search-index",
            "-> committed in the index",
        ),
        (
            "seconds projection=sql-store",
            "whole: changed -> committed in the store",
        ),
        (
            "seconds projection=search-index",
            "whole: changed -> committed in the index",
        ),
    ] {
        let Some(buckets) = stages.get(series) else {
            continue;
        };
        let ms = |q: f64| {
            latency::quantile(buckets, q).map_or("-".into(), |s| format!("{:.0}", s * 1000.0))
        };
        println!(
            "| freshness by stage: {} | {:.0} | | | | | p50 {} ms, p99 {} ms ({what}) |",
            series.split_once(' ').map_or(series, |(_, labels)| labels),
            buckets.last().map_or(0.0, |b| b.1),
            ms(0.5),
            ms(0.99),
        );
    }
    anyhow::ensure!(
        f.seen as u64 == f.changes,
        "freshness: only {} of {} changes reached the API within 30 s of the last",
        f.seen,
        f.changes
    );
    Ok(())
}

/// The table of every row measured so far.
fn print_table(args: &Args, rows: &[Row], stage_records: usize, started: Instant) {
    println!();
    println!(
        "Tributary benchmark: {} invoices ({} lines each) for {} companies; single stages on {stage_records}; {} cores; run took {:.0} s",
        args.records,
        args.lines,
        args.companies,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| measurement | records | seconds | records/s | CPU s | peak RSS MB | notes |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {} | {} |",
            r.what,
            r.records,
            r.seconds,
            r.rate(),
            r.cpu.map_or(String::new(), |c| format!("{c:.1}")),
            r.rss.map_or(String::new(), mb),
            r.note
        );
    }
}
