//! The kinds of job, their attempts and retry delays.

use std::time::Duration;

/// The kinds of job this binary runs. A kind it does not know (written by a
/// newer binary during a rolling upgrade) is left for a binary that does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A CSV export stored for download ([`export`]).
    Export,
    /// One webhook delivery ([`webhook`]).
    Webhook,
    /// A bulk import ([`import`]).
    Import,
    /// An e-mail notification ([`email`]).
    Email,
    /// A scheduled backup ([`backup`]).
    Backup,
    /// A scheduled restore drill ([`backup`]).
    BackupDrill,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Export,
        Kind::Webhook,
        Kind::Import,
        Kind::Email,
        Kind::Backup,
        Kind::BackupDrill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Export => "export",
            Kind::Webhook => "webhook",
            Kind::Import => "import",
            Kind::Email => "email",
            Kind::Backup => "backup",
            Kind::BackupDrill => "backup_drill",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Attempts before a job of this kind is dead (dead-lettered); for
    /// webhook deliveries, `webhooks.max_attempts` sets it when they are
    /// queued, this is what a replay adds.
    pub fn max_attempts(self) -> i32 {
        match self {
            Kind::Export => 4,
            Kind::Webhook => 12,
            Kind::Import => 4,
            Kind::Email => 8,
            Kind::Backup => 3,
            Kind::BackupDrill => 2,
        }
    }

    /// The delay before retry `n` (1 after the first failure), before
    /// jitter: exponential from the kind's base, capped.
    pub fn backoff(self, n: i32) -> Duration {
        let (base, cap) = match self {
            Kind::Export | Kind::Import => (Duration::from_secs(2), Duration::from_secs(300)),
            // 5 s, 10 s, 20 s, … up to an hour apart: twelve attempts span
            // about two and a half hours of a receiver being away.
            Kind::Webhook => (Duration::from_secs(5), Duration::from_secs(3600)),
            // 10 s, 20 s, … 10 min: eight attempts span about half an hour.
            Kind::Email => (Duration::from_secs(10), Duration::from_secs(600)),
            // A disk that filled up or a database away: a minute, then two.
            Kind::Backup | Kind::BackupDrill => (Duration::from_secs(60), Duration::from_secs(600)),
        };
        let factor = 2u32.saturating_pow(n.clamp(1, 20) as u32 - 1);
        base.saturating_mul(factor).min(cap)
    }
}

/// "Equal jitter": between half the delay and the whole of it, so retries of
/// many jobs that failed together spread out.
pub fn jittered(delay: Duration) -> Duration {
    let bytes = crate::identity::random_bytes(8);
    let unit = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])) as f64 / u64::MAX as f64;
    delay.mul_f64(0.5 + unit / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_jitter_stays_within_half() {
        let k = Kind::Export;
        assert_eq!(k.backoff(1), Duration::from_secs(2));
        assert_eq!(k.backoff(2), Duration::from_secs(4));
        assert_eq!(k.backoff(3), Duration::from_secs(8));
        assert_eq!(k.backoff(30), Duration::from_secs(300));
        for _ in 0..200 {
            let d = jittered(Duration::from_secs(8));
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("webhooks"), None);
    }
}
