//! Call limits per key (a source tenant, an API key), owned by the runtime
//! and shared by every connection whose connector declares the same key.
//!
//! Calls are counted in a sliding window: at most `per_minute` in any 60
//! seconds (a call waits for the window to move), at most `per_day` in any
//! 24 hours (a call past it is refused with the time until a slot frees, and
//! the runtime pauses that connection), at most `concurrent` at once. The
//! counts live in memory: after a restart the source's own 429 answers,
//! with their Retry-After, are the backstop.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tributary_connector_api::RateLimits;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The limiters of every key seen, created on first use.
#[derive(Default)]
pub struct Limiters {
    by_key: std::sync::Mutex<HashMap<String, Arc<Limiter>>>,
}

impl Limiters {
    pub fn get(&self, limits: &RateLimits) -> Arc<Limiter> {
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(limits.key.clone())
                .or_insert_with(|| Arc::new(Limiter::new(limits.clone()))),
        )
    }
}

pub struct Limiter {
    limits: RateLimits,
    /// When each call of the last 24 hours started, oldest first.
    calls: Mutex<VecDeque<Instant>>,
    at_once: Option<Arc<Semaphore>>,
}

/// Held for the duration of one call.
pub struct Permit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

/// The day's calls are used up; a slot frees after `retry_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayLimitReached {
    pub retry_after: Duration,
    pub limit: u32,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        let at_once = limits
            .concurrent
            .map(|n| Arc::new(Semaphore::new(n.max(1) as usize)));
        Limiter {
            limits,
            calls: Mutex::new(VecDeque::new()),
            at_once,
        }
    }

    pub fn key(&self) -> &str {
        &self.limits.key
    }

    /// Waits for a slot in the minute and a free concurrent slot, or says
    /// the day's calls are used up.
    pub async fn acquire(&self) -> Result<Permit, DayLimitReached> {
        loop {
            let wait = {
                let mut calls = self.calls.lock().await;
                let now = Instant::now();
                while calls.front().is_some_and(|t| now - *t >= DAY) {
                    calls.pop_front();
                }
                if let Some(limit) = self.limits.per_day
                    && calls.len() >= limit as usize
                {
                    let oldest = calls.front().copied().unwrap_or(now);
                    return Err(DayLimitReached {
                        retry_after: DAY.saturating_sub(now - oldest),
                        limit,
                    });
                }
                let minute_wait = self.limits.per_minute.and_then(|limit| {
                    let limit = limit.max(1) as usize;
                    let in_minute = calls
                        .iter()
                        .rev()
                        .take_while(|t| now - **t < MINUTE)
                        .count();
                    (in_minute >= limit).then(|| {
                        let oldest_in_window = calls[calls.len() - limit];
                        MINUTE.saturating_sub(now - oldest_in_window)
                    })
                });
                if minute_wait.is_none() {
                    calls.push_back(now);
                }
                minute_wait
            };
            match wait {
                Some(wait) => {
                    tracing::debug!(key = %self.limits.key, wait_ms = wait.as_millis() as u64, "waiting for the per-minute call limit");
                    tokio::time::sleep(wait).await;
                }
                None => break,
            }
        }
        let permit = match &self.at_once {
            Some(s) => Some(
                Arc::clone(s)
                    .acquire_owned()
                    .await
                    .map_err(|_| DayLimitReached {
                        retry_after: Duration::ZERO,
                        limit: 0,
                    })?,
            ),
            None => None,
        };
        Ok(Permit(permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32, per_day: u32, concurrent: u32) -> RateLimits {
        RateLimits {
            key: "xero:t1".into(),
            per_minute: Some(per_minute),
            per_day: Some(per_day),
            concurrent: Some(concurrent),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sixty_a_minute_then_wait_for_the_window() {
        let limiter = Limiter::new(limits(60, 5000, 5));
        let start = Instant::now();
        for _ in 0..60 {
            drop(limiter.acquire().await.unwrap());
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the first 60 go at once");
        drop(limiter.acquire().await.unwrap());
        assert_eq!(start.elapsed(), MINUTE, "the 61st waits for the window");
        for _ in 0..59 {
            drop(limiter.acquire().await.unwrap());
        }
        assert_eq!(start.elapsed(), MINUTE);
        drop(limiter.acquire().await.unwrap());
        assert_eq!(start.elapsed(), MINUTE * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_day_limit_refuses_with_the_time_until_a_slot_frees() {
        let limiter = Limiter::new(limits(1000, 120, 5));
        let start = Instant::now();
        for _ in 0..120 {
            drop(limiter.acquire().await.unwrap());
        }
        tokio::time::advance(Duration::from_secs(3600)).await;
        let refused = limiter.acquire().await.err().unwrap();
        assert_eq!(refused.limit, 120);
        assert_eq!(refused.retry_after, DAY - Duration::from_secs(3600));
        tokio::time::advance(refused.retry_after).await;
        assert!(
            limiter.acquire().await.is_ok(),
            "a slot freed a day after the first call"
        );
        assert_eq!(start.elapsed(), DAY);
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_five_at_once_and_shared_by_key() {
        let limiters = Limiters::default();
        let a = limiters.get(&limits(1000, 5000, 5));
        let b = limiters.get(&limits(1000, 5000, 5));
        assert!(
            Arc::ptr_eq(&a, &b),
            "connections of one tenant share a limiter"
        );
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(a.acquire().await.unwrap());
        }
        let sixth = tokio::time::timeout(Duration::from_secs(5), b.acquire()).await;
        assert!(sixth.is_err(), "the sixth waits while five are in flight");
        held.pop();
        assert!(b.acquire().await.is_ok());
        let other = limiters.get(&RateLimits {
            key: "xero:t2".into(),
            ..limits(1000, 5000, 5)
        });
        assert!(!Arc::ptr_eq(&a, &other));
    }
}
