//! The fanout's timing on tokio's paused clock: each replica is a script of
//! how long it takes and what it answers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Fanout, ShardError};
use crate::metrics::GatewayMetrics;
use crate::routing::Endpoint;
use matview_api::{Answer, ClientError};

/// What a replica does with every call: wait, then answer or fail with a status.
#[derive(Clone, Copy)]
struct Script {
    after: Duration,
    status: Option<u16>,
}

fn answers_after(ms: u64) -> Script {
    Script {
        after: Duration::from_millis(ms),
        status: None,
    }
}

fn fails_after(ms: u64, status: u16) -> Script {
    Script {
        after: Duration::from_millis(ms),
        status: Some(status),
    }
}

struct Replicas {
    scripts: HashMap<String, Script>,
    calls: Mutex<Vec<(String, Duration)>>,
    started: Instant,
}

impl Replicas {
    fn new(scripts: &[Script]) -> (Replicas, Vec<Endpoint>) {
        let endpoints: Vec<Endpoint> = (0..scripts.len())
            .map(|i| Endpoint {
                pod: format!("p-{i}"),
                url: format!("http://r{i}"),
            })
            .collect();
        let scripts = endpoints
            .iter()
            .map(|e| e.url.clone())
            .zip(scripts.iter().copied())
            .collect();
        let replicas = Replicas {
            scripts,
            calls: Mutex::new(Vec::new()),
            started: Instant::now(),
        };
        (replicas, endpoints)
    }

    async fn call(&self, url: String) -> Result<Answer<String>, ClientError> {
        let script = self.scripts[&url];
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((url.clone(), self.started.elapsed()));
        }
        tokio::time::sleep(script.after).await;
        match script.status {
            None => Ok(Answer {
                body: url,
                revision: None,
                positions: Vec::new(),
            }),
            Some(code) => Err(ClientError::Status {
                url,
                status: http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::IM_A_TEAPOT),
                problem: None,
            }),
        }
    }

    fn calls(&self) -> Vec<(String, Duration)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

const HEDGE: Duration = Duration::from_millis(100);
const DEADLINE: Duration = Duration::from_secs(5);

async fn ask(
    fanout: &Fanout,
    replicas: &Replicas,
    endpoints: &[Endpoint],
) -> Result<Answer<String>, ShardError> {
    let metrics = GatewayMetrics::default();
    fanout
        .on_shard(&metrics, 0, endpoints, Instant::now() + DEADLINE, |url| {
            replicas.call(url)
        })
        .await
}

#[tokio::test(start_paused = true)]
async fn a_slow_replica_is_joined_by_the_next_and_the_first_answer_wins() {
    let fanout = Fanout::new(HEDGE);
    let (replicas, endpoints) = Replicas::new(&[answers_after(3000), answers_after(10)]);
    let started = Instant::now();
    let answer = ask(&fanout, &replicas, &endpoints).await.expect("answered");
    assert_eq!(answer.body, "http://r1");
    // Asked after the hedge delay, answered 10 ms later: not after 3 s.
    assert_eq!(started.elapsed(), HEDGE + Duration::from_millis(10));
    let calls = replicas.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lone_slow_replica_still_answers_within_the_deadline() {
    // Slower than the hedge delay every time: a call cut at the hedge delay
    // would never be answered; one left to run is.
    let fanout = Fanout::new(HEDGE);
    let (replicas, endpoints) = Replicas::new(&[answers_after(2500)]);
    let started = Instant::now();
    let answer = ask(&fanout, &replicas, &endpoints).await.expect("answered");
    assert_eq!(answer.body, "http://r0");
    assert_eq!(started.elapsed(), Duration::from_millis(2500));
    // One more call to it (past a stuck connection), not one per hedge delay.
    assert_eq!(replicas.calls().len(), 2, "{:?}", replicas.calls());
}

#[tokio::test(start_paused = true)]
async fn a_failing_replica_is_left_for_the_next_at_once() {
    let fanout = Fanout::new(HEDGE);
    let (replicas, endpoints) = Replicas::new(&[fails_after(5, 503), answers_after(5)]);
    // Rotation starts at replica 0 for the first call of a new fanout.
    let started = Instant::now();
    let answer = ask(&fanout, &replicas, &endpoints).await.expect("answered");
    assert_eq!(answer.body, "http://r1");
    assert_eq!(started.elapsed(), Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn replicas_that_keep_failing_are_tried_round_after_round_until_the_deadline() {
    let fanout = Fanout::new(HEDGE);
    let (replicas, endpoints) = Replicas::new(&[fails_after(10, 503), fails_after(10, 502)]);
    let started = Instant::now();
    let error = ask(&fanout, &replicas, &endpoints)
        .await
        .expect_err("nobody answers");
    assert!(
        matches!(
            error,
            ShardError::Exhausted {
                shard: 0,
                last: Some(_)
            }
        ),
        "{error:?}"
    );
    assert_eq!(started.elapsed(), DEADLINE);
    // A round is two failed calls (20 ms) and a pause (50 ms): ~71 rounds.
    let calls = replicas.calls();
    let rounds = DEADLINE.as_millis() / 70;
    assert!(
        calls.len() as u128 >= 2 * (rounds - 1) && calls.len() as u128 <= 2 * (rounds + 1),
        "{} calls",
        calls.len()
    );
    // Both replicas were asked, alternately.
    assert!(calls.windows(2).all(|w| w[0].0 != w[1].0), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_is_an_error_for_the_caller_is_not_retried() {
    let fanout = Fanout::new(HEDGE);
    let (replicas, endpoints) = Replicas::new(&[fails_after(5, 404), answers_after(5)]);
    let error = ask(&fanout, &replicas, &endpoints)
        .await
        .expect_err("404 is the answer");
    assert!(
        matches!(error, ShardError::Refused(ref e) if e.is_not_found()),
        "{error:?}"
    );
    assert_eq!(replicas.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_shard_without_replicas_is_dark() {
    let fanout = Fanout::new(HEDGE);
    let (replicas, _) = Replicas::new(&[]);
    let error = ask(&fanout, &replicas, &[]).await.expect_err("dark");
    assert!(matches!(error, ShardError::Dark { shard: 0 }), "{error:?}");
}
