//! Traces: OpenTelemetry spans sent over OTLP/HTTP (protobuf) when
//! `telemetry.otlp_endpoint` is set. Work is traced across the server's
//! boundaries: a request's W3C `traceparent` is honoured, the context is
//! stored with the jobs a request queues and resumed when a worker runs
//! them (on any replica), and sent on webhook deliveries.
//!
//! The API is explicit: [`Span::start`] under the current context (a
//! task-local set by [`scope`]), attributes, [`Span::end`] (or drop). With
//! export off, contexts still flow (ids in logs, `traceparent` on webhook
//! deliveries) and nothing is recorded.

pub mod context;
mod otlp;

use std::borrow::Cow;
use std::future::Future;
use std::sync::OnceLock;
use std::time::SystemTime;

use tokio::sync::mpsc;

pub use context::TraceContext;
pub use otlp::encode;

use crate::config::TelemetrySettings;
use crate::metrics::Metrics;

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The context the running task works in, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// The current context as a `traceparent` header, to store with a job.
pub fn current_header() -> Option<String> {
    current().map(|c| c.header())
}

/// Runs `work` with `context` as the current one.
pub async fn scope<F: Future>(context: TraceContext, work: F) -> F::Output {
    CURRENT.scope(context, work).await
}

/// A span's role (OpenTelemetry `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    /// Serving a request.
    Server,
    /// Calling another service (webhook receiver, mail relay).
    Client,
    /// Queueing work for later.
    Producer,
    /// Running queued work.
    Consumer,
}

impl Kind {
    fn code(self) -> u64 {
        match self {
            Kind::Internal => 1,
            Kind::Server => 2,
            Kind::Client => 3,
            Kind::Producer => 4,
            Kind::Consumer => 5,
        }
    }
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

struct Tracer {
    sample_ratio: f64,
    /// `None` with export off.
    spans: Option<mpsc::Sender<otlp::SpanData>>,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();

fn tracer() -> &'static Tracer {
    TRACER.get_or_init(|| Tracer {
        sample_ratio: 1.0,
        spans: None,
    })
}

/// Starts the exporter (when an endpoint is configured); call once, from
/// within the runtime, before serving.
pub fn init(settings: &TelemetrySettings) -> Result<(), crate::tls::CaFileError> {
    let spans = match &settings.endpoint {
        Some(endpoint) => {
            // The collector is the admin's own choice: any address.
            let policy = crate::config::AddressPolicy {
                allow: ["0.0.0.0/0", "::/0"]
                    .iter()
                    .filter_map(|c| crate::config::Cidr::parse(c).ok())
                    .collect(),
                deny_private: false,
            };
            let outbound = crate::outbound::Outbound::new(
                policy,
                std::time::Duration::from_secs(10),
                settings.ca_file.as_deref(),
                concat!("Mogothrow77/", env!("APPLIANCE_VERSION")),
            )
            .map_err(|e| crate::tls::CaFileError {
                path: e.path,
                reason: e.reason,
            })?;
            let (sender, receiver) = mpsc::channel(otlp::QUEUE);
            let mut resource = vec![
                ("service.name".to_string(), settings.service_name.clone()),
                (
                    "service.version".to_string(),
                    env!("APPLIANCE_VERSION").to_string(),
                ),
            ];
            if let Some(host) = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
            {
                resource.push(("host.name".to_string(), host));
            }
            resource.extend(settings.resource_attributes.iter().cloned());
            tokio::spawn(otlp::export(
                receiver,
                otlp::Destination {
                    url: format!("{}/v1/traces", endpoint.trim_end_matches('/')),
                    headers: settings.headers.clone(),
                    resource,
                    outbound,
                },
            ));
            tracing::info!(endpoint = %endpoint, sample_ratio = settings.sample_ratio, "sending traces over OTLP/HTTP");
            Some(sender)
        }
        None => None,
    };
    let _ = TRACER.set(Tracer {
        sample_ratio: settings.sample_ratio,
        spans,
    });
    Ok(())
}

/// A unit of work being timed. Ends (and is sent, when sampled and export
/// is on) when dropped.
pub struct Span {
    context: TraceContext,
    /// Sampled and export on: only then are attributes kept.
    recording: bool,
    parent: Option<[u8; 8]>,
    name: Cow<'static, str>,
    kind: Kind,
    start: SystemTime,
    attributes: Vec<(&'static str, Value)>,
    error: Option<String>,
}

impl Span {
    /// A span under `parent`, or under the current context, or a new trace.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        parent: Option<TraceContext>,
    ) -> Span {
        let parent = parent.or_else(current);
        let context = match &parent {
            Some(p) => p.child(),
            None => TraceContext::root(tracer().sample_ratio),
        };
        Span {
            recording: context.sampled && tracer().spans.is_some(),
            context,
            parent: parent.map(|p| p.span_id),
            name: name.into(),
            kind,
            start: SystemTime::now(),
            attributes: Vec::new(),
            error: None,
        }
    }

    /// A span under the current context, only when that context is
    /// recorded (sampled, export on): for work that is part of a trace but
    /// must not start one (each SQL statement). `name` is only built then.
    pub fn within_current(name: impl FnOnce() -> String, kind: Kind) -> Option<Span> {
        let parent = current()?;
        if !parent.sampled || tracer().spans.is_none() {
            return None;
        }
        Some(Span::start(name(), kind, Some(parent)))
    }

    /// This span's context: what work done inside it runs under.
    pub fn context(&self) -> TraceContext {
        self.context
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if self.recording {
            self.attributes.push((key, value.into()));
        }
    }

    /// Marks the span failed, with what went wrong.
    pub fn fail(&mut self, message: impl Into<String>) {
        if self.recording {
            self.error = Some(message.into());
        }
    }

    pub fn end(self) {}
}

impl Drop for Span {
    fn drop(&mut self) {
        if !self.recording {
            return;
        }
        let Some(sender) = &tracer().spans else {
            return;
        };
        let data = otlp::SpanData {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            parent_span_id: self.parent,
            name: std::mem::take(&mut self.name).into_owned(),
            kind: self.kind,
            start: self.start,
            end: SystemTime::now(),
            attributes: std::mem::take(&mut self.attributes),
            error: self.error.take(),
        };
        if sender.try_send(data).is_err() {
            Metrics::shared().telemetry_spans("dropped_queue_full", 1);
        }
    }
}
