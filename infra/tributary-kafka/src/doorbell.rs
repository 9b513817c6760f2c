//! How a process's publishers tell its own consumers that there is
//! something new, so that a consumer with nothing to read can stop asking
//! the broker (each fetch costs the local broker SQLite queries over every
//! partition) and still start again at once.

use std::time::Duration;

use tokio::sync::watch;

/// Rung after every acknowledged publish; heard by every [`Listener`].
#[derive(Debug, Clone)]
pub struct Doorbell(watch::Sender<u64>);

impl Default for Doorbell {
    fn default() -> Self {
        Doorbell(watch::Sender::new(0))
    }
}

impl Doorbell {
    pub fn new() -> Self {
        Doorbell::default()
    }

    /// Something new was published.
    pub fn ring(&self) {
        self.0.send_modify(|rings| *rings = rings.wrapping_add(1));
    }

    /// A listener that hears rings from now on.
    pub fn listener(&self) -> Listener {
        Listener(self.0.subscribe())
    }
}

/// The receiving end of a [`Doorbell`].
#[derive(Debug, Clone)]
pub struct Listener(watch::Receiver<u64>);

impl Listener {
    /// Forgets rings heard so far.
    pub fn mark_heard(&mut self) {
        self.0.borrow_and_update();
    }

    /// Waits at most `timeout` for a ring not yet heard: true when one came
    /// (or had come since the last [`Listener::mark_heard`]), false when the
    /// time ran out or no doorbell is left to ring.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.0.changed()).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => {
                // The doorbell is gone: only the clock can wake us.
                tokio::time::sleep_until(deadline).await;
                false
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ring_before_or_during_the_wait_is_heard_and_silence_times_out() {
        let bell = Doorbell::new();
        let mut listener = bell.listener();
        assert!(!listener.wait(Duration::from_secs(5)).await);
        bell.ring();
        assert!(listener.wait(Duration::from_secs(5)).await, "rung before");
        let ringer = bell.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            ringer.ring();
        });
        let started = tokio::time::Instant::now();
        assert!(listener.wait(Duration::from_secs(5)).await, "rung during");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        bell.ring();
        listener.mark_heard();
        assert!(
            !listener.wait(Duration::from_secs(5)).await,
            "heard already"
        );
        drop(bell);
        let started = tokio::time::Instant::now();
        assert!(
            !listener.wait(Duration::from_secs(5)).await,
            "no doorbell left"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
