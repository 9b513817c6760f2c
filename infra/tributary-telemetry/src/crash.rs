//! Crash points, for the fault-injection tests: with
//! `TRIBUTARY_CRASH_AT=<point>:<n>` set, the process kills itself with
//! SIGKILL (exactly what `kill -9` does: no destructor, no flush) the n-th
//! time it reaches `<point>`. Unset, a crash point costs one atomic load.
//!
//! Points: `store.before_commit` and `store.after_commit` (a store's
//! transaction with the rows and their checkpoint), `index.before_commit`
//! and `index.after_commit` (the search index's commit), `worker.after_publish`
//! (a page's events acknowledged by the broker, its cursor not yet saved).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms a crash point.
pub const CRASH_AT: &str = "TRIBUTARY_CRASH_AT";

struct Armed {
    point: String,
    at: u64,
    reached: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(CRASH_AT).ok()?;
            let (point, at) = spec.rsplit_once(':').unwrap_or((spec.as_str(), "1"));
            let at = at.parse().unwrap_or_else(|_| {
                panic!("{CRASH_AT}={spec}: expected <point>:<n>, n a positive number")
            });
            Some(Armed {
                point: point.to_string(),
                at,
                reached: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Kills the process here if `TRIBUTARY_CRASH_AT` names this point and this
/// is the time it asked for.
pub fn crash_point(point: &str) {
    let Some(armed) = armed() else { return };
    if armed.point != point {
        return;
    }
    if armed.reached.fetch_add(1, Ordering::SeqCst) + 1 == armed.at {
        eprintln!(
            "{CRASH_AT}: killing the process at {point} (time {})",
            armed.at
        );
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own pid; the process ends here.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
