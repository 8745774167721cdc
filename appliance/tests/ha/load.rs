//! A steady load of mixed reads and writes through the balancer, each
//! request on its own connection, as independent clients send them; every
//! acknowledged write is remembered by id so that none can go missing
//! unnoticed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::client;

/// What one request got: an HTTP status, or 0 when the connection failed
/// without an answer.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub at: Instant,
    pub status: u16,
}

/// One client's outcomes, and its acknowledged writes as (id, n).
type ClientRecord = (Vec<Outcome>, Vec<(i64, i64)>);

pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<ClientRecord>>,
    started: Instant,
}

/// The figures of one scenario.
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub acknowledged: Vec<(i64, i64)>,
    pub duration: Duration,
}

/// Each load's round: its writes' `n` start at round × 10⁸.
static ROUND: AtomicI64 = AtomicI64::new(0);

/// The smallest `n` the next load will write: every record written so far
/// is below it.
pub fn next_round_floor() -> i64 {
    ROUND.load(Ordering::SeqCst) * 100 * 1_000_000
}

/// Clients sending at once: two writers, two readers.
pub const CLIENTS: usize = 4;

impl Load {
    pub fn start(addr: SocketAddr, token: &str, collection: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let round = ROUND.fetch_add(1, Ordering::SeqCst);
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let stop = stop.clone();
            let bearer = format!("Bearer {token}");
            let records = format!("/api/v1/collections/{collection}/records");
            tasks.push(tokio::spawn(async move {
                let (mut outcomes, mut acknowledged) = (Vec::new(), Vec::new());
                let mut i = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    let writer = c % 2 == 0;
                    let n = (round * 100 + c as i64) * 1_000_000 + i;
                    i += 1;
                    let body = format!(r#"{{"data":{{"n":{n}}}}}"#);
                    let headers = [
                        ("Authorization", bearer.as_str()),
                        ("Content-Type", "application/json"),
                    ];
                    let answer = if writer {
                        client::request(addr, "POST", &records, &headers, Some(body.as_bytes()))
                            .await
                    } else {
                        let path = format!("{records}?limit=20&sort=-n");
                        client::request(addr, "GET", &path, &headers[..1], None).await
                    };
                    let status = answer.as_ref().map(|r| r.status).unwrap_or(0);
                    outcomes.push(Outcome {
                        at: Instant::now(),
                        status,
                    });
                    match answer {
                        Ok(r) if r.status == 201 => {
                            acknowledged.push((r.json()["id"].as_i64().expect("id"), n))
                        }
                        Ok(r) if r.status < 300 => {}
                        // A client backs off a little after a failure.
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                (outcomes, acknowledged)
            }));
        }
        Load {
            stop,
            tasks,
            started: Instant::now(),
        }
    }

    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let (mut outcomes, mut acknowledged) = (Vec::new(), Vec::new());
        for t in self.tasks {
            let (o, a) = t.await.expect("load task");
            outcomes.extend(o);
            acknowledged.extend(a);
        }
        outcomes.sort_by_key(|o| o.at);
        Report {
            outcomes,
            acknowledged,
            duration: self.started.elapsed(),
        }
    }
}

impl Report {
    /// Failed requests by status (0: no answer).
    pub fn failures(&self) -> BTreeMap<u16, usize> {
        let mut by = BTreeMap::new();
        for o in self
            .outcomes
            .iter()
            .filter(|o| o.status >= 300 || o.status == 0)
        {
            *by.entry(o.status).or_insert(0) += 1;
        }
        by
    }

    /// From `since` to the end of the last failure after it.
    pub fn recovery(&self, since: Instant) -> Option<Duration> {
        self.outcomes
            .iter()
            .filter(|o| o.at >= since && (o.status >= 300 || o.status == 0))
            .map(|o| o.at.duration_since(since))
            .max()
    }
}
