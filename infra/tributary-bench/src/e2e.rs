//! Tributary end to end: `tributary up` (release) against the benchmark
//! source, until the API returns every record from the store and the search
//! index agrees.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::procs;
use crate::source::{Source, tenant_id};

pub(crate) const API_KEY: &str = "bench-api-key";
pub(crate) const CREDENTIALS_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub(crate) struct Pipeline {
    pub child: Child,
    pub api: String,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn company(t: usize) -> String {
    format!("company-{t:03}")
}

fn tributary(binary: &Path, config: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "tributary {args:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// Writes the configuration, adds and authorizes one Xero connection per
/// tenant, and starts `tributary up`.
pub(crate) fn start(
    binary: &Path,
    source: &Source,
    store_url: Option<&str>,
    dir: &Path,
    sync_interval_secs: f64,
) -> anyhow::Result<Pipeline> {
    std::fs::create_dir_all(dir)?;
    use tributary_testkit::free_port;
    let (broker, registry, api) = (free_port(), free_port(), free_port());
    let config = dir.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlog = \"warn\"\n\
             [broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n\
             keys = [{{ name = \"bench\", sha256 = \"{key}\", companies = [\"*\"] }}]\n\
             [store]\nurl = {store:?}\n\
             [sandbox]\nenabled = false\n\
             [sync]\ninterval_secs = {sync_interval_secs}\npage_size = 1000\nconcurrency = {companies}\n\
             [projector]\nbatch_size = 2000\nlinger_ms = 50\n\
             [xero]\nclient_id = \"bench\"\nclient_secret = \"bench\"\n\
             authorize_url = \"{url}/authorize\"\ntoken_url = \"{url}/connect/token\"\n\
             connections_url = \"{url}/connections\"\napi_url = \"{url}/api.xro/2.0\"\n\
             calls_per_minute = 1000000\ncalls_per_day = 100000000\ncalls_at_once = 5\n\
             [security]\nallow_private_network = true\ncredentials_key = \"{CREDENTIALS_KEY}\"\n",
            data = dir.join("data"),
            key = tributary_api::hash_key(API_KEY),
            store = store_url.unwrap_or_default(),
            companies = source.tenants.len().max(1),
            url = source.url,
        ),
    )?;
    for t in 0..source.tenants.len() {
        let added = tributary(
            binary,
            &config,
            &[
                "connections",
                "add",
                "xero",
                "--company",
                &company(t),
                "--setting",
                &format!("tenant_id={}", tenant_id(t)),
            ],
        )?;
        let state = added
            .split(['?', '&', '\n'])
            .find_map(|p| p.strip_prefix("state="))
            .context("no authorization state printed")?
            .to_string();
        tributary(
            binary,
            &config,
            &[
                "connections",
                "complete",
                "--source",
                "xero",
                "--state",
                &state,
                "--code",
                "bench",
            ],
        )?;
    }
    let log = std::fs::File::create(dir.join("up.log"))?;
    let child = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .arg("up")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok(Pipeline {
        child,
        api: format!("http://127.0.0.1:{api}"),
    })
}

pub(crate) async fn get(api: &str, path: &str) -> Option<serde_json::Value> {
    tributary_testkit::api_get(&format!("{api}{path}"), API_KEY).await
}

/// Invoices stored and indexed, summed over the companies.
pub(crate) async fn invoice_counts(api: &str, companies: usize) -> (i64, i64) {
    let mut total = (0, 0);
    for t in 0..companies {
        let Some(status) = get(api, &format!("/v1/companies/{}/status", company(t))).await else {
            continue;
        };
        if let Some(entry) = status["data_types"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["data_type"] == "invoices"))
        {
            total.0 += entry["records"].as_i64().unwrap_or(0);
            total.1 += entry["indexed"].as_i64().unwrap_or(0);
        }
    }
    total
}

/// Waits until the API has every invoice of `source` stored and indexed,
/// telling `progress` how many are stored at each look.
async fn wait_loaded(
    pipeline: &Pipeline,
    source: &Source,
    dir: &Path,
    timeout: Duration,
    mut progress: impl FnMut(i64),
) -> anyhow::Result<()> {
    let total: i64 = source.tenants.iter().map(|t| t.invoices as i64).sum();
    let started = Instant::now();
    loop {
        let (stored, indexed) = invoice_counts(&pipeline.api, source.tenants.len()).await;
        progress(stored);
        if stored == total && indexed == total {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "after {timeout:?} the API has {stored} invoices stored and {indexed} indexed of {total}; see {}",
                dir.join("up.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the pipeline answers `/health`.
async fn wait_started(pipeline: &mut Pipeline, dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    while get(&pipeline.api, "/health").await.is_none() {
        if started.elapsed() > Duration::from_secs(120) || pipeline.child.try_wait()?.is_some() {
            bail!(
                "tributary up did not start; see {}",
                dir.join("up.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// CPU of a pipeline left alone: per process, as a share of one core.
pub(crate) struct Idle {
    pub seconds: f64,
    pub per_process: Vec<(String, f64)>,
}

impl Idle {
    pub(crate) fn total(&self) -> f64 {
        self.per_process.iter().map(|(_, share)| share).sum()
    }
}

/// Loads `source` with the default sync interval (15 s), lets the first
/// rounds settle for `settle`, then measures the CPU of every process of
/// the pipeline over `measure`, with nothing changing at the source.
pub(crate) async fn idle(
    binary: &Path,
    source: &Source,
    dir: &Path,
    settle: Duration,
    measure: Duration,
) -> anyhow::Result<Idle> {
    let mut pipeline = start(binary, source, None, dir, 15.0)?;
    wait_started(&mut pipeline, dir).await?;
    wait_loaded(&pipeline, source, dir, Duration::from_secs(600), |_| {}).await?;
    tokio::time::sleep(settle).await;
    let tree = procs::tree(pipeline.child.id());
    let before: Vec<f64> = tree.iter().map(|p| procs::cpu_seconds(*p)).collect();
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    let seconds = started.elapsed().as_secs_f64();
    let per_process = tree
        .iter()
        .zip(before)
        .map(|(pid, before)| {
            let used = procs::cpu_seconds(*pid) - before;
            (procs::memory(*pid).name, used / seconds)
        })
        .collect();
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pipeline.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = pipeline.child.wait();
    Ok(Idle {
        seconds,
        per_process,
    })
}

pub(crate) struct E2e {
    pub startup: Duration,
    pub sync: Duration,
    pub cpu_seconds: f64,
    pub peak_rss: u64,
    /// Peak of the anonymous part of the summed RSS.
    pub peak_anon: u64,
    /// Per process: name, peak RSS (bytes), CPU seconds.
    pub processes: Vec<(String, u64, f64)>,
    /// The peak summed RSS (bytes) by the time the store held each of
    /// [`MEMORY_MARKS`] records (those below the total).
    pub memory_at: Vec<(i64, u64)>,
}

/// Where the end-to-end runs note the memory so far, to see it stay flat.
pub(crate) const MEMORY_MARKS: [i64; 2] = [100_000, 300_000];

/// Runs the pipeline until every record is in the store and the index.
pub(crate) async fn run(
    binary: &Path,
    source: &Source,
    store_url: Option<&str>,
    dir: &Path,
    timeout: Duration,
) -> anyhow::Result<E2e> {
    let started = Instant::now();
    let mut pipeline = start(binary, source, store_url, dir, 1.0)?;
    let pid = pipeline.child.id();
    let monitor = procs::Monitor::start(pid);
    wait_started(&mut pipeline, dir).await?;
    let api_up = Instant::now();
    let mut memory_at = Vec::new();
    wait_loaded(&pipeline, source, dir, timeout, |stored| {
        for mark in MEMORY_MARKS {
            if stored >= mark && !memory_at.iter().any(|(m, _)| *m == mark) {
                memory_at.push((mark, monitor.peak()));
            }
        }
    })
    .await?;
    let done = Instant::now();
    let tree = procs::tree(pid);
    let processes: Vec<(String, u64, f64)> = tree
        .iter()
        .map(|p| {
            let m = procs::memory(*p);
            (m.name, m.peak, procs::cpu_seconds(*p))
        })
        .collect();
    let cpu_seconds = processes.iter().map(|(_, _, cpu)| cpu).sum();
    let (peak_rss, peak_anon) = monitor.stop();
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let _ = pipeline.child.wait();
    Ok(E2e {
        startup: api_up - started,
        sync: done - api_up,
        cpu_seconds,
        peak_rss,
        peak_anon,
        processes,
        memory_at,
    })
}
