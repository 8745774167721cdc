//! `mogothrow77 smoke --url URL --token-file FILE`: a synthetic check of a
//! running appliance through its public API, as a client sees it. In the
//! reserved scratch collection (`records::reserved::SMOKE`, whose writes
//! raise no webhook event) it creates a record, reads it back through a
//! filter, runs a one-record export job to completion and downloads it,
//! then deletes what it made. Each step's time is printed; exit 0 when all
//! passed, 1 when one failed (what it made is still cleaned up), 2 for bad
//! input.

mod http;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{json, Value};

use crate::exit::Exit;
use crate::records::reserved::SMOKE;
pub use http::Trust;

/// What the command was given.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub pin_cert: Option<PathBuf>,
    /// For the whole check (each request, and the export's wait).
    pub timeout: Duration,
}

/// One step's outcome.
struct Step {
    name: &'static str,
    took: Duration,
    failure: Option<String>,
}

pub async fn run(options: &Options) -> Exit {
    let token = match read_token(&options.token_file) {
        Ok(token) => token,
        Err(e) => {
            eprintln!("mogothrow77 smoke: {e}");
            return Exit::Config;
        }
    };
    let trust = match (&options.pin_cert, &options.ca_file) {
        (Some(cert), _) => Trust::Pinned(cert),
        (None, ca) => Trust::Roots(ca.as_deref()),
    };
    let client = match http::Client::new(&options.url, trust, token, options.timeout) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("mogothrow77 smoke: {e}");
            return Exit::Config;
        }
    };
    let started = Instant::now();
    let steps = check(&client, options.timeout).await;
    let mut failed = false;
    for step in &steps {
        let ms = step.took.as_secs_f64() * 1000.0;
        match &step.failure {
            None => println!("ok    {:<20} {ms:>8.1} ms", step.name),
            Some(why) => {
                failed = true;
                println!("FAIL  {:<20} {ms:>8.1} ms  {why}", step.name);
            }
        }
    }
    let total = started.elapsed().as_secs_f64();
    if failed {
        println!("smoke check FAILED against {} in {total:.2} s", options.url);
        Exit::Failure
    } else {
        println!("smoke check passed against {} in {total:.2} s", options.url);
        Exit::Ok
    }
}

fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(format!(
            "--token-file {}: expected one API token (m77_…) and nothing else",
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// Runs the steps in order; after a failure the remaining ones are not
/// tried, but the clean-up always is.
async fn check(client: &http::Client, timeout: Duration) -> Vec<Step> {
    let probe = format!(
        "smoke-{}-{}",
        crate::privileges::host_name(),
        uuid::Uuid::new_v4()
    );
    let records = format!("/api/v1/collections/{SMOKE}/records");
    let mut steps = Vec::new();
    let mut record_id: Option<i64> = None;
    let mut export_id: Option<i64> = None;

    let step = timed("create record", async {
        let a = client
            .send(
                Method::POST,
                &records,
                Some(&json!({ "data": { "probe": probe, "n": 1 } })),
            )
            .await?;
        if a.status != 201 {
            return Err(a.error());
        }
        record_id = a.json()["id"].as_i64();
        record_id
            .map(|_| ())
            .ok_or_else(|| "the answer has no id".to_string())
    })
    .await;
    let mut ok = step.failure.is_none();
    steps.push(step);

    let filter = json!({ "field": "probe", "op": "eq", "value": probe }).to_string();
    if ok {
        let step = timed("read back by filter", async {
            let a = client
                .send(
                    Method::GET,
                    &format!("{records}?filter={}", crate::http::percent_encode(&filter)),
                    None,
                )
                .await?;
            if a.status != 200 {
                return Err(a.error());
            }
            let items = a.json()["items"].as_array().cloned().unwrap_or_default();
            match items.as_slice() {
                [only]
                    if only["id"].as_i64() == record_id
                        && only["data"]["probe"] == json!(probe) =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "the filter found {} records, expected the one just created",
                    items.len()
                )),
            }
        })
        .await;
        ok = step.failure.is_none();
        steps.push(step);
    }

    if ok {
        let step = timed("export job", async {
            let a = client
                .send(
                    Method::POST,
                    &format!("/api/v1/collections/{SMOKE}/exports"),
                    Some(&json!({ "filter": filter })),
                )
                .await?;
            if a.status != 202 {
                return Err(a.error());
            }
            export_id = a.json()["id"].as_i64();
            let id = export_id.ok_or("the answer has no export id")?;
            let ready = wait_ready(client, id, timeout).await?;
            let link = ready["download_url"]
                .as_str()
                .ok_or("a ready export without a download_url")?;
            let path = link
                .find("/api/v1/")
                .map(|i| &link[i..])
                .ok_or_else(|| format!("download_url {link:?} is not under /api/v1/"))?;
            let file = client.send(Method::GET, path, None).await?;
            if file.status != 200 {
                return Err(file.error());
            }
            let csv = String::from_utf8_lossy(&file.body);
            if csv.lines().count() != 2 || !csv.contains(&probe) {
                return Err(format!(
                    "the file has {} lines, expected a header and the record",
                    csv.lines().count()
                ));
            }
            Ok(())
        })
        .await;
        steps.push(step);
    }

    steps.push(
        timed("clean up", async {
            let mut problems = Vec::new();
            if let Some(id) = export_id {
                match client
                    .send(Method::DELETE, &format!("/api/v1/exports/{id}"), None)
                    .await
                {
                    Ok(a) if a.status == 204 || a.status == 404 => {}
                    Ok(a) => problems.push(format!("deleting export {id}: {}", a.error())),
                    Err(e) => problems.push(e),
                }
            }
            if let Some(id) = record_id {
                match client
                    .send(Method::DELETE, &format!("{records}/{id}"), None)
                    .await
                {
                    Ok(a) if a.status == 204 || a.status == 404 => {}
                    Ok(a) => problems.push(format!("deleting record {id}: {}", a.error())),
                    Err(e) => problems.push(e),
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        })
        .await,
    );
    steps
}

/// Polls the export until it is ready; a failed or cancelled one, or one
/// still not ready after `timeout`, is an error.
async fn wait_ready(client: &http::Client, id: i64, timeout: Duration) -> Result<Value, String> {
    let started = Instant::now();
    loop {
        let a = client
            .send(Method::GET, &format!("/api/v1/exports/{id}"), None)
            .await?;
        if a.status != 200 {
            return Err(a.error());
        }
        let export = a.json();
        match export["state"].as_str() {
            Some("ready") => return Ok(export),
            Some(state @ ("failed" | "cancelled")) => {
                return Err(format!(
                    "the export job ended {state}: {}",
                    export["error"].as_str().unwrap_or("no error recorded")
                ))
            }
            _ if started.elapsed() >= timeout => {
                return Err(format!(
                    "the export was still {} after {} s: are the job workers running?",
                    export["state"].as_str().unwrap_or("unknown"),
                    timeout.as_secs()
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn timed(
    name: &'static str,
    work: impl std::future::Future<Output = Result<(), String>>,
) -> Step {
    let started = Instant::now();
    let result = work.await;
    Step {
        name,
        took: started.elapsed(),
        failure: result.err(),
    }
}
