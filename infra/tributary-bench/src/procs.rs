//! What a process tree costs, read from `/proc`: CPU seconds, resident
//! memory now and at its peak.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

fn ticks_per_second() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Fields of `/proc/<pid>/stat` after the command name (which may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// `pid` and every process below it.
pub(crate) fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    let procs: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, stat_fields(p)?.get(1)?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    while i < all.len() {
        let parent = all[i];
        all.extend(
            procs
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    all
}

/// User plus system CPU seconds of one process so far.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    stat_fields(pid)
        .and_then(|f| Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?))
        .map_or(0.0, |ticks| ticks / ticks_per_second())
}

/// One process's memory, in bytes, from `/proc/<pid>/status`.
pub(crate) struct Memory {
    /// Resident now.
    pub rss: u64,
    /// Resident at its peak (the kernel's high-water mark).
    pub peak: u64,
    /// Resident now and anonymous: the heap and stacks, what the process
    /// allocated itself (the rest is mapped files: code, libraries, the
    /// search index's files, which the kernel can drop and read back).
    pub anon: u64,
    pub name: String,
}

pub(crate) fn memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let name = text
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .unwrap_or("")
        .trim()
        .to_string();
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
        name,
    }
}

/// Samples the summed resident memory of a process tree every 100 ms and
/// keeps the peaks of all of it and of its anonymous part.
pub(crate) struct Monitor {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    peak_anon: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    pub(crate) fn start(pid: u32) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let peak_anon = Arc::new(AtomicU64::new(0));
        let (s, p, a) = (Arc::clone(&stop), Arc::clone(&peak), Arc::clone(&peak_anon));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let now: Vec<Memory> = tree(pid).into_iter().map(memory).collect();
                p.fetch_max(now.iter().map(|m| m.rss).sum(), Ordering::Relaxed);
                a.fetch_max(now.iter().map(|m| m.anon).sum(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Monitor {
            stop,
            peak,
            peak_anon,
            thread: Some(thread),
        }
    }

    /// The peak of the summed RSS so far, in bytes.
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// The peaks of the summed RSS and of its anonymous part, in bytes.
    pub(crate) fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.peak.load(Ordering::Relaxed),
            self.peak_anon.load(Ordering::Relaxed),
        )
    }
}

/// Waits for a child and returns its exit status, CPU seconds and peak RSS
/// (bytes), from the kernel's accounting of that one process.
pub(crate) fn wait_with_usage(child: &mut std::process::Child) -> anyhow::Result<(bool, f64, u64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    #[allow(unsafe_code)]
    // SAFETY: a zeroed rusage is a valid value to be written to.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    #[allow(unsafe_code)]
    // SAFETY: wait4 on our own child with valid pointers.
    let done = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    anyhow::ensure!(
        done == pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        secs(usage.ru_utime) + secs(usage.ru_stime),
        usage.ru_maxrss as u64 * 1024,
    ))
}
