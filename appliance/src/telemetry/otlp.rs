//! OTLP/HTTP with protobuf: finished spans are queued (bounded: a full
//! queue drops spans and counts them, it never waits), sent in batches to
//! `<telemetry.otlp_endpoint>/v1/traces` as an `ExportTraceServiceRequest`
//! (opentelemetry-proto's `collector/trace/v1`), encoded here by hand: the
//! few messages involved do not justify a protobuf toolchain.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use tokio::sync::mpsc;

use super::{Kind, Value};
use crate::metrics::Metrics;

/// A finished span, ready to send.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    pub error: Option<String>,
}

/// Spans waiting to be sent, at most.
pub const QUEUE: usize = 4096;
/// Spans per request to the collector, at most.
const BATCH: usize = 512;
/// How long a span waits for its batch, at most.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Where and how spans are sent.
pub struct Destination {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub resource: Vec<(String, String)>,
    pub outbound: crate::outbound::Outbound,
}

/// Sends what arrives on `spans` until the sender side is gone.
pub async fn export(mut spans: mpsc::Receiver<SpanData>, to: Destination) {
    let metrics = Metrics::shared();
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing = false;
    loop {
        let deadline = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(deadline);
        let open = loop {
            tokio::select! {
                span = spans.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= BATCH {
                            break true;
                        }
                    }
                    None => break false,
                },
                () = &mut deadline => break true,
            }
        };
        if !batch.is_empty() {
            let count = batch.len() as u64;
            let body = Bytes::from(encode(&batch, &to.resource));
            batch.clear();
            let mut trace = crate::outbound::Trace::default();
            let mut headers: Vec<(String, String)> = vec![(
                "content-type".to_string(),
                "application/x-protobuf".to_string(),
            )];
            headers.extend(to.headers.iter().cloned());
            let sent = to.outbound.post(&to.url, &headers, body, &mut trace).await;
            match sent {
                Ok(status) if status.is_success() => {
                    metrics.telemetry_spans("exported", count);
                    if failing {
                        tracing::info!("spans reach the OpenTelemetry collector again");
                        failing = false;
                    }
                }
                outcome => {
                    metrics.telemetry_spans("export_failed", count);
                    if !failing {
                        let reason = match outcome {
                            Ok(status) => format!("it answered {status}"),
                            Err(e) => e.to_string(),
                        };
                        tracing::warn!(
                            url = %to.url,
                            %reason,
                            "cannot send spans to the OpenTelemetry collector; they are dropped (counted in mogothrow77_telemetry_spans_total)"
                        );
                        failing = true;
                    }
                }
            }
        }
        if !open {
            return;
        }
    }
}

// --- protobuf wire format ------------------------------------------------

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire_type));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, value: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&value.to_le_bytes());
}

fn varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    tag(out, field, 0);
    varint(out, value);
}

/// `AnyValue`: string 1, bool 2, int 3, double 4.
fn any_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Str(s) => bytes_field(&mut out, 1, s.as_bytes()),
        Value::Bool(b) => varint_field(&mut out, 2, u64::from(*b)),
        Value::Int(i) => varint_field(&mut out, 3, *i as u64),
    }
    out
}

/// `KeyValue`: key 1, value 2.
fn key_value(key: &str, value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, key.as_bytes());
    bytes_field(&mut out, 2, &any_value(value));
    out
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `Span`: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6,
/// start 7, end 8, attributes 9, status 15 (message 2, code 3: ERROR = 2).
fn span(s: &SpanData) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, &s.trace_id);
    bytes_field(&mut out, 2, &s.span_id);
    if let Some(parent) = &s.parent_span_id {
        bytes_field(&mut out, 4, parent);
    }
    bytes_field(&mut out, 5, s.name.as_bytes());
    varint_field(&mut out, 6, s.kind.code());
    fixed64_field(&mut out, 7, nanos(s.start));
    fixed64_field(&mut out, 8, nanos(s.end));
    for (key, value) in &s.attributes {
        bytes_field(&mut out, 9, &key_value(key, value));
    }
    if let Some(message) = &s.error {
        let mut status = Vec::new();
        bytes_field(&mut status, 2, message.as_bytes());
        varint_field(&mut status, 3, 2);
        bytes_field(&mut out, 15, &status);
    }
    out
}

/// `ExportTraceServiceRequest { resource_spans: [ResourceSpans { resource
/// (1) { attributes (1) }, scope_spans (2): [ScopeSpans { scope (1) {
/// name 1, version 2 }, spans (2) }] }] }`.
pub fn encode(spans: &[SpanData], resource: &[(String, String)]) -> Vec<u8> {
    let mut resource_msg = Vec::new();
    for (key, value) in resource {
        bytes_field(
            &mut resource_msg,
            1,
            &key_value(key, &Value::Str(value.clone())),
        );
    }
    let mut scope = Vec::new();
    bytes_field(&mut scope, 1, b"mogothrow77");
    bytes_field(&mut scope, 2, env!("APPLIANCE_VERSION").as_bytes());
    let mut scope_spans = Vec::new();
    bytes_field(&mut scope_spans, 1, &scope);
    for s in spans {
        bytes_field(&mut scope_spans, 2, &span(s));
    }
    let mut resource_spans = Vec::new();
    bytes_field(&mut resource_spans, 1, &resource_msg);
    bytes_field(&mut resource_spans, 2, &scope_spans);
    let mut request = Vec::new();
    bytes_field(&mut request, 1, &resource_spans);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_are_the_protobuf_encoding() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        varint_field(&mut out, 3, u64::MAX); // -1 as int64
        assert_eq!(out.len(), 11);
        let mut out = Vec::new();
        bytes_field(&mut out, 5, b"GET");
        assert_eq!(out, [0x2a, 3, b'G', b'E', b'T']);
        let mut out = Vec::new();
        fixed64_field(&mut out, 7, 1);
        assert_eq!(out, [0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_request_holds_every_span() {
        let span = SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: Some([3; 8]),
            name: "GET /healthz".to_string(),
            kind: Kind::Server,
            start: UNIX_EPOCH + Duration::from_secs(1),
            end: UNIX_EPOCH + Duration::from_secs(2),
            attributes: vec![("http.response.status_code", Value::Int(200))],
            error: Some("boom".to_string()),
        };
        let body = encode(
            &[span.clone(), span],
            &[("service.name".to_string(), "mogothrow77".to_string())],
        );
        // Both spans' names and the resource attribute are in the body.
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.matches("GET /healthz").count(), 2);
        assert!(text.contains("service.name") && text.contains("boom"));
        assert_eq!(body[0], 0x0a, "field 1, length-delimited");
    }
}
