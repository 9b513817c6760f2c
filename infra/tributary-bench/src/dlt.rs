//! dlt (installed from PyPI into a throwaway virtualenv) loading the same
//! source into the same PostgreSQL with its REST API source.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::procs;
use crate::source::{Source, tenant_id};

pub(crate) const DLT_VERSION: &str = "1.31.0";

pub(crate) struct Dlt {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss: u64,
    pub rows: i64,
}

/// The virtualenv with dlt, created on first use.
fn python(cache: &Path) -> anyhow::Result<PathBuf> {
    let venv = cache.join(format!("dlt-{DLT_VERSION}"));
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import dlt, psycopg2"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        eprintln!(
            "bench: installing dlt {DLT_VERSION} into {}",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("dlt[postgres]=={DLT_VERSION}"))
                .status()?
                .success();
        if !ok {
            bail!("cannot install dlt into {}", venv.display());
        }
    }
    Ok(python)
}

pub(crate) async fn run(
    source: &Source,
    pg_url: &str,
    cache: &Path,
    work: &Path,
) -> anyhow::Result<Dlt> {
    let python = python(cache)?;
    let script = tributary_testkit::prism::workspace_root().join("infra/bench/dlt_load.py");
    let tenants: Vec<String> = (0..source.tenants.len()).map(tenant_id).collect();
    std::fs::create_dir_all(work)?;
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg(&script)
        .env("BENCH_API", source.api_url())
        .env("BENCH_TENANTS", tenants.join(","))
        // dlt insists on a password; the throwaway cluster trusts local users.
        .env(
            "BENCH_PG",
            pg_url.replacen("tributary@", "tributary:unused@", 1),
        )
        .env("BENCH_PAGE_SIZE", "1000")
        .env("BENCH_DIR", work)
        .env("RUNTIME__LOG_LEVEL", "WARNING")
        .stdout(std::fs::File::create(work.join("dlt.out"))?)
        .stderr(std::fs::File::create(work.join("dlt.err"))?)
        .spawn()
        .context("cannot start dlt")?;
    let (ok, cpu_seconds, peak_rss) =
        tokio::task::spawn_blocking(move || procs::wait_with_usage(&mut child)).await??;
    let seconds = started.elapsed().as_secs_f64();
    if !ok {
        bail!("dlt failed; see {}", work.join("dlt.err").display());
    }
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(pg_url).await?;
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM dlt_xero.invoices")
        .fetch_one(&mut conn)
        .await
        .context("dlt loaded no invoices table")?;
    Ok(Dlt {
        seconds,
        cpu_seconds,
        peak_rss,
        rows,
    })
}
