//! W3C Trace Context (`traceparent`): the trace a piece of work belongs to
//! and the span it is part of, carried in requests, stored with jobs and
//! sent on webhook deliveries.

/// A span's place in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Whether the trace is recorded (the `sampled` flag).
    pub sampled: bool,
}

fn random<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut bytes = [0u8; N];
    loop {
        // An all-zero id is invalid; the chance is nil, the loop is cheap.
        if rng.fill(&mut bytes).is_ok() && bytes.iter().any(|b| *b != 0) {
            return bytes;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    out.iter().any(|b| *b != 0).then_some(out)
}

impl TraceContext {
    /// A new trace, recorded when its id falls within `ratio` (the
    /// OpenTelemetry trace-id ratio rule, so every service that sees the
    /// id decides alike).
    pub fn root(ratio: f64) -> TraceContext {
        let trace_id = random::<16>();
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        let bound = (ratio.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        TraceContext {
            trace_id,
            span_id: random::<8>(),
            sampled: ratio >= 1.0 || u64::from_be_bytes(low) < bound,
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: random::<8>(),
            ..*self
        }
    }

    /// Reads a `traceparent` header; `None` when it is not a valid one
    /// (then the request starts a trace of its own).
    pub fn parse(header: &str) -> Option<TraceContext> {
        let header = header.trim();
        let version = header.get(..2)?;
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if version == "ff" || !version.bytes().all(lower_hex) {
            return None;
        }
        // Version 00 is exactly 55 characters; later versions may append
        // fields after a dash, which are ignored.
        if header.len() < 55
            || (version == "00" && header.len() != 55)
            || (header.len() > 55 && header.as_bytes().get(55) != Some(&b'-'))
        {
            return None;
        }
        let parts: Vec<&str> = header[..55].split('-').collect();
        let [_, trace, span, flags] = parts.as_slice() else {
            return None;
        };
        if flags.len() != 2 || !flags.bytes().all(lower_hex) {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceContext {
            trace_id: unhex::<16>(trace)?,
            span_id: unhex::<8>(span)?,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header naming this span.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_hostile_ones_are_refused() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = TraceContext::parse(h).expect("valid");
        assert!(c.sampled);
        assert_eq!(c.header(), h);
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let unsampled = TraceContext::parse(&h.replace("-01", "-00")).expect("valid");
        assert!(!unsampled.sampled);
        // A later version with more fields: the known part is used.
        assert!(TraceContext::parse(&format!("01{}-extra", &h[2..])).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn children_share_the_trace_and_the_ratio_decides_roots() {
        let root = TraceContext::root(1.0);
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert!(root.sampled);
        assert!(!TraceContext::root(0.0).sampled);
        let sampled = (0..2000)
            .filter(|_| TraceContext::root(0.25).sampled)
            .count();
        assert!((350..650).contains(&sampled), "{sampled} of 2000 at 0.25");
    }
}
