#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The dispatcher under a paused tokio clock: the default retry schedule
//! (about 27.6 hours) runs in an instant. The deliveries live in a model of
//! the state store (the SQL itself is tested in `state.rs`): real I/O under
//! a paused clock lets time jump while it waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tributary_producer::ProducerError;
use tributary_producer::secrets::{Cipher, Key};
use tributary_producer::state::{Attempt, AttemptOutcome, Delivery, Subscription};
use tributary_schemas::Timestamp;
use tributary_webhooks::dispatch::Answer;
use tributary_webhooks::sign::SigningSecret;
use tributary_webhooks::{Clock, DeliveryStore, DispatchSettings, Dispatcher, Transport};

/// Who holds a delivery, until when.
type Claim = Option<(String, Timestamp)>;

/// The state store's delivery rules, in memory.
#[derive(Default)]
struct Model {
    subscriptions: Vec<Subscription>,
    deliveries: Mutex<Vec<(Delivery, Claim)>>,
    attempts: Mutex<Vec<(String, Attempt)>>,
}

fn due(d: &Delivery, claim: &Claim, now: Timestamp) -> bool {
    d.next_attempt_at.is_some_and(|at| at <= now)
        && claim.as_ref().is_none_or(|(_, until)| *until <= now)
}

#[async_trait]
impl DeliveryStore for Model {
    async fn release_claims_of(&self, owner: &str) -> Result<u64, ProducerError> {
        let mut n = 0;
        for (_, claim) in self.deliveries.lock().unwrap().iter_mut() {
            if claim.as_ref().is_some_and(|(o, _)| o == owner) {
                *claim = None;
                n += 1;
            }
        }
        Ok(n)
    }
    async fn subscriptions_due(&self, now: Timestamp) -> Result<Vec<String>, ProducerError> {
        let mut subs: Vec<String> = self
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|(d, c)| due(d, c, now))
            .map(|(d, _)| d.subscription_id.clone())
            .collect();
        subs.dedup();
        Ok(subs)
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, ProducerError> {
        Ok(self
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(d, _)| d.next_attempt_at)
            .min())
    }
    async fn claim(
        &self,
        subscription_id: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, ProducerError> {
        let mut out = Vec::new();
        for (d, claim) in self.deliveries.lock().unwrap().iter_mut() {
            if out.len() < limit && d.subscription_id == subscription_id && due(d, claim, now) {
                *claim = Some((owner.to_string(), until));
                out.push(d.clone());
            }
        }
        Ok(out)
    }
    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, ProducerError> {
        Ok(self.subscriptions.iter().find(|s| s.id == id).cloned())
    }
    async fn prune(&self, before: Timestamp) -> Result<u64, ProducerError> {
        let mut deliveries = self.deliveries.lock().unwrap();
        let was = deliveries.len();
        deliveries.retain(|(d, _)| d.finished_at.is_none_or(|at| at >= before));
        Ok((was - deliveries.len()) as u64)
    }
    async fn record(
        &self,
        delivery_id: &str,
        owner: &str,
        attempt: &Attempt,
        outcome: &AttemptOutcome,
    ) -> Result<bool, ProducerError> {
        let mut deliveries = self.deliveries.lock().unwrap();
        let Some((d, claim)) = deliveries
            .iter_mut()
            .find(|(d, c)| d.id == delivery_id && c.as_ref().is_some_and(|(o, _)| o == owner))
        else {
            return Ok(false);
        };
        *claim = None;
        d.attempts += 1;
        (d.status, d.next_attempt_at, d.finished_at) = match outcome {
            AttemptOutcome::Delivered => ("delivered".into(), None, Some(attempt.at)),
            AttemptOutcome::RetryAt(at) => ("pending".into(), Some(*at), None),
            AttemptOutcome::GiveUp => ("failed".into(), None, Some(attempt.at)),
        };
        self.attempts
            .lock()
            .unwrap()
            .push((delivery_id.to_string(), attempt.clone()));
        Ok(true)
    }
}

/// `https://good.example` fails each delivery's first three attempts with
/// 503; `https://dead.example` never answers (it times out after 10 s).
struct Subscribers {
    clock: Clock,
    calls: Mutex<Vec<(String, String, Timestamp)>>,
}

#[async_trait]
impl Transport for Subscribers {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], _body: &str) -> Answer {
        let id = headers
            .iter()
            .find(|(n, _)| *n == "webhook-id")
            .unwrap()
            .1
            .clone();
        let earlier = {
            let mut calls = self.calls.lock().unwrap();
            let earlier = calls
                .iter()
                .filter(|(u, i, _)| u == url && *i == id)
                .count();
            calls.push((url.to_string(), id, self.clock.now()));
            earlier
        };
        if url.contains("dead") {
            tokio::time::sleep(Duration::from_secs(10)).await;
            return Err("operation timed out".into());
        }
        if earlier < 3 { Ok(503) } else { Ok(200) }
    }
}

fn subscription(id: &str, url: &str, cipher: &Cipher) -> Subscription {
    let secret = SigningSecret::generate().expose();
    Subscription {
        id: id.into(),
        url: url.into(),
        event_types: vec!["sync.completed".into()],
        company_id: None,
        description: String::new(),
        sealed_secret: cipher.seal(&format!("webhook-subscription:{id}"), secret.as_bytes()),
        created_at: Timestamp(0),
        removed_at: None,
    }
}

fn pending(id: &str, subscription: &str, at: Timestamp) -> (Delivery, Claim) {
    let d = Delivery {
        id: id.into(),
        message_id: id.into(),
        subscription_id: subscription.into(),
        event_type: "sync.completed".into(),
        company_id: Some("acme".into()),
        payload: "{}".into(),
        created_at: at,
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: Some(at),
        last_attempt_at: None,
        last_status_code: None,
        last_error: None,
        finished_at: None,
        replay_of: None,
    };
    (d, None)
}

/// Runs a dispatcher named `test` (10 s timeout, batches of 10) over
/// `model` until `true` is sent on the returned sender.
fn start(
    model: &Arc<Model>,
    cipher: Arc<Cipher>,
    subscribers: &Arc<Subscribers>,
    clock: Clock,
    schedule: Vec<Duration>,
    poll: Duration,
    keep: Duration,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let dispatcher = Arc::new(Dispatcher {
        store: model.clone(),
        cipher,
        transport: subscribers.clone(),
        settings: DispatchSettings {
            owner: "test".into(),
            schedule,
            timeout: Duration::from_secs(10),
            batch: 10,
            poll,
            keep,
        },
        clock,
        wake: Arc::new(Notify::new()),
    });
    let (stop, shutdown) = watch::channel(false);
    (stop, tokio::spawn(dispatcher.run(shutdown)))
}

const SCHEDULE_SECS: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

#[tokio::test(start_paused = true)]
async fn retries_by_the_schedule_then_gives_up_and_a_dead_subscriber_holds_up_no_one_else() {
    let clock = Clock::start();
    let t0 = clock.now();
    let cipher = Arc::new(Cipher::new(Key::generate(), vec![]));
    let model = Arc::new(Model {
        subscriptions: vec![
            subscription("sub_dead", "https://dead.example/hook", &cipher),
            subscription("sub_good", "https://good.example/hook", &cipher),
        ],
        ..Model::default()
    });
    for (id, sub) in [
        ("d1", "sub_dead"),
        ("d2", "sub_dead"),
        ("g1", "sub_good"),
        ("g2", "sub_good"),
    ] {
        model.deliveries.lock().unwrap().push(pending(id, sub, t0));
    }
    let subscribers = Arc::new(Subscribers {
        clock,
        calls: Mutex::default(),
    });
    let (stop, running) = start(
        &model,
        cipher,
        &subscribers,
        clock,
        SCHEDULE_SECS
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect(),
        Duration::from_secs(3_600),
        Duration::from_secs(30 * 86_400),
    );
    // Two days of the clock, an instant of the machine's.
    while model
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .any(|(d, _)| d.status == "pending")
    {
        assert!(
            clock.now().millis() - t0.millis() < 2 * 86_400_000,
            "still pending after two days"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();

    let attempts = model.attempts.lock().unwrap().clone();
    let of = |id: &str| -> Vec<Attempt> {
        attempts
            .iter()
            .filter(|(d, _)| d == id)
            .map(|(_, a)| a.clone())
            .collect()
    };
    let secs = |a: &Attempt| (a.at.millis() - t0.millis()) as f64 / 1000.0;
    // The good subscriber: its first attempts at once, not after the dead
    // one's timeouts; each retry after its wait; delivered at the fourth.
    for id in ["g1", "g2"] {
        let tried = of(id);
        assert_eq!(tried.len(), 4, "{id}: {tried:?}");
        assert!(
            secs(&tried[0]) < 1.0,
            "{id} waited for the dead subscriber: {tried:?}"
        );
        for (i, pair) in tried.windows(2).enumerate() {
            let gap = (pair[1].at.millis() - pair[0].at.millis()) as f64 / 1000.0;
            let wait = SCHEDULE_SECS[i] as f64;
            assert!(
                (wait..wait + 1.0).contains(&gap),
                "{id} retry {i}: {gap} s after, want {wait} s: {tried:?}"
            );
        }
        assert_eq!(tried[3].status_code, Some(200));
        assert_eq!(tried[0].error.as_deref(), Some("answered 503"));
    }
    // The dead one: every attempt times out (10 s), each retry its wait
    // after that; given up after the eighth, over a day after the first.
    for id in ["d1", "d2"] {
        let tried = of(id);
        assert_eq!(tried.len(), SCHEDULE_SECS.len() + 1, "{id}: {tried:?}");
        for (i, pair) in tried.windows(2).enumerate() {
            let gap = (pair[1].at.millis() - pair[0].at.millis()) as f64 / 1000.0;
            let wait = SCHEDULE_SECS[i] as f64 + 10.0;
            assert!(
                (wait..wait + 11.0).contains(&gap),
                "{id} retry {i}: {gap} s after, want {wait} s: {tried:?}"
            );
        }
        assert!(
            tried
                .iter()
                .all(|a| a.status_code.is_none()
                    && a.error.as_deref() == Some("operation timed out"))
        );
        let span = secs(tried.last().unwrap()) - secs(&tried[0]);
        assert!(span > 24.0 * 3_600.0, "gave up after {span} s");
    }
    let statuses: Vec<(String, String)> = model
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|(d, _)| (d.id.clone(), d.status.clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("d1", "failed"),
            ("d2", "failed"),
            ("g1", "delivered"),
            ("g2", "delivered")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Every request carried the delivery's id, the same on every retry.
    let calls = subscribers.calls.lock().unwrap();
    assert_eq!(calls.iter().filter(|(_, id, _)| id == "g1").count(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_dispatcher_restarted_under_its_name_takes_back_its_claims_at_once() {
    let clock = Clock::start();
    let t0 = clock.now();
    let cipher = Arc::new(Cipher::new(Key::generate(), vec![]));
    let model = Arc::new(Model {
        subscriptions: vec![subscription(
            "sub_good",
            "https://good.example/hook",
            &cipher,
        )],
        ..Model::default()
    });
    // Claimed for an hour by "test" before it was killed.
    let (d, _) = pending("g1", "sub_good", t0);
    model
        .deliveries
        .lock()
        .unwrap()
        .push((d, Some(("test".into(), Timestamp(t0.millis() + 3_600_000)))));
    let subscribers = Arc::new(Subscribers {
        clock,
        calls: Mutex::default(),
    });
    let (stop, running) = start(
        &model,
        cipher,
        &subscribers,
        clock,
        vec![Duration::from_secs(1); 3],
        Duration::from_secs(1),
        Duration::from_secs(30 * 86_400),
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    stop.send(true).unwrap();
    running.await.unwrap();
    let calls = subscribers.calls.lock().unwrap();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!((calls[0].2.millis() - t0.millis()) < 1_000, "{calls:?}");
    assert_eq!(model.deliveries.lock().unwrap()[0].0.status, "delivered");
}

#[tokio::test(start_paused = true)]
async fn ended_deliveries_leave_the_log_after_keep_pending_ones_stay() {
    let clock = Clock::start();
    let t0 = clock.now();
    let cipher = Arc::new(Cipher::new(Key::generate(), vec![]));
    let model = Arc::new(Model {
        subscriptions: vec![
            subscription("sub_good", "https://good.example/hook", &cipher),
            subscription("sub_dead", "https://dead.example/hook", &cipher),
        ],
        ..Model::default()
    });
    model
        .deliveries
        .lock()
        .unwrap()
        .push(pending("g1", "sub_good", t0));
    // Due in a week: pending all along.
    model.deliveries.lock().unwrap().push(pending(
        "d1",
        "sub_dead",
        Timestamp(t0.millis() + 7 * 86_400_000),
    ));
    let subscribers = Arc::new(Subscribers {
        clock,
        calls: Mutex::default(),
    });
    let (stop, running) = start(
        &model,
        cipher,
        &subscribers,
        clock,
        vec![Duration::from_secs(1); 3],
        Duration::from_secs(60),
        Duration::from_secs(86_400),
    );
    let ids = || -> Vec<String> {
        model
            .deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|(d, _)| d.id.clone())
            .collect()
    };
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    assert_eq!(ids(), ["g1", "d1"], "delivered, but not yet a day ago");
    tokio::time::sleep(Duration::from_secs(2 * 86_400)).await;
    assert_eq!(
        ids(),
        ["d1"],
        "a day after it ended, the delivered one is forgotten"
    );
    stop.send(true).unwrap();
    running.await.unwrap();
}
