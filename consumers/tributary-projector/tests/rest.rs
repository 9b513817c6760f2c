#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! A resting projector fetches nothing while nothing is published, reads
//! at once what its own process publishes (the doorbell), and within the
//! poll interval what others publish.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tributary_kafka::Doorbell;
use tributary_projection::{Batch, Checkpoint, Projection, ProjectionError};
use tributary_projector::{Assignment, ProjectorSettings, Rest};

const TOPIC: &str = "rest.test";

/// Remembers how far it read.
#[derive(Clone, Default)]
struct Positions(Arc<Mutex<Checkpoint>>);

#[async_trait]
impl Projection for Positions {
    fn name(&self) -> &'static str {
        "positions"
    }
    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError> {
        Ok(self.0.lock().unwrap().clone())
    }
    async fn apply(&mut self, batch: &Batch) -> Result<(), ProjectionError> {
        self.0.lock().unwrap().advance_all(&batch.positions);
        Ok(())
    }
}

impl Positions {
    /// Waits until `next` messages were read; how long that took.
    async fn wait_for(&self, next: i64, limit: Duration) -> Duration {
        let started = Instant::now();
        while self.0.lock().unwrap().next_offset(TOPIC, 0) < Some(next) {
            assert!(
                started.elapsed() < limit,
                "message {next} not read within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }
}

async fn send(producer: &FutureProducer, payload: &str) {
    producer
        .send(
            FutureRecord::to(TOPIC).key("k").payload(payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

/// A local broker with the test topic and the dead-letter topic.
async fn broker(dir: &std::path::Path) -> (tributary_broker::LocalBroker, ClientConfig) {
    let tansu = tributary_broker::find_tansu(None).unwrap();
    let broker = tributary_broker::LocalBroker::start(
        &tansu,
        &dir.join("broker"),
        tributary_testkit::free_port(),
    )
    .await
    .unwrap();
    let client = tributary_kafka::client(broker.bootstrap_servers(), []);
    tributary_broker::ensure_topics(
        &client,
        &[TOPIC.to_string(), tributary_schemas::dead_letter_topic()],
        1,
        1,
    )
    .await
    .unwrap();
    (broker, client)
}

type Running = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), tributary_projector::ProjectorError>>,
);

/// Runs a projector into `positions` that rests after `after` of quiet.
fn start(
    client: &ClientConfig,
    positions: &Positions,
    after: Duration,
    poll: Duration,
    doorbell: &Doorbell,
) -> Running {
    let settings = ProjectorSettings {
        batch_size: 100,
        linger: Duration::from_millis(20),
        topics: vec![TOPIC.into()],
        assignment: Assignment::All,
        rest: Some(Rest {
            after,
            poll,
            wake: doorbell.listener(),
        }),
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (client, positions) = (client.clone(), positions.clone());
    let run = tokio::spawn(async move {
        // Not Avro: every message is a decode dead letter, and moves the
        // position all the same.
        let url = "http://127.0.0.1:9";
        tributary_projector::run(&client, url, vec![positions], settings, shutdown).await
    });
    (stop, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rests_and_wakes_for_its_own_publishes_and_within_the_poll_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = broker(dir.path()).await;
    let doorbell = Doorbell::new();
    let poll = Duration::from_secs(8);
    let positions = Positions::default();
    let (stop, run) = start(
        &client,
        &positions,
        Duration::from_millis(250),
        poll,
        &doorbell,
    );
    let producer: FutureProducer = ClientConfig::clone(&client).create().unwrap();
    send(&producer, "first").await;
    doorbell.ring();
    positions.wait_for(1, Duration::from_secs(30)).await;

    // At rest now. Published by this process: read well before the poll.
    tokio::time::sleep(Duration::from_secs(2)).await;
    send(&producer, "rung").await;
    doorbell.ring();
    let took = positions.wait_for(2, poll).await;
    assert!(took < poll / 2, "a rung message took {took:?}");

    // Published elsewhere (no ring): read at the next poll.
    for n in 3..=4 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        send(&producer, "elsewhere").await;
        let took = positions.wait_for(n, poll + Duration::from_secs(10)).await;
        // Awake, it would have read it within a fetch wait.
        assert!(
            took > Duration::from_secs(1),
            "read after {took:?}: not resting"
        );
    }

    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
    drop(producer);
    broker.stop(Duration::from_secs(10));
}
