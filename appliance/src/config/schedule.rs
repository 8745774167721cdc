//! When scheduled backups run (`backup.schedule`): `daily HH:MM` (UTC) or `every N` (seconds,
//! minutes or hours), as slots on the Unix clock so that every replica
//! computes the same ones.

use std::fmt;
use std::time::Duration;

/// Shortest interval `every` accepts (short ones are for trying a setup).
const MIN_INTERVAL: Duration = Duration::from_secs(10);
const DAY: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Once a day at this many seconds after midnight UTC.
    Daily { at: u32 },
    /// Every so often, slots aligned to the Unix epoch.
    Every(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a schedule; expected `daily HH:MM` (UTC, e.g. daily 02:30) or \
     `every N` with N in s, m or h, at least 10s (e.g. every 6h)"
)]
pub struct ScheduleError {
    text: String,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let bad = || ScheduleError {
            text: text.to_string(),
        };
        let mut words = text.split_whitespace();
        let (Some(word), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        match word {
            "daily" => {
                let (h, m) = value.split_once(':').ok_or_else(bad)?;
                let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
                if !digits(h) || !digits(m) {
                    return Err(bad());
                }
                let (h, m) = (
                    h.parse::<u32>().map_err(|_| bad())?,
                    m.parse::<u32>().map_err(|_| bad())?,
                );
                if h > 23 || m > 59 {
                    return Err(bad());
                }
                Ok(Schedule::Daily {
                    at: h * 3600 + m * 60,
                })
            }
            "every" => {
                let unit_at = value.len().checked_sub(1).ok_or_else(bad)?;
                let (n, unit) = value.split_at(unit_at);
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let n = n.parse::<u64>().map_err(|_| bad())?;
                let secs = match unit {
                    "s" => Some(n),
                    "m" => n.checked_mul(60),
                    "h" => n.checked_mul(3600),
                    _ => None,
                }
                .filter(|s| *s <= 7 * DAY as u64)
                .ok_or_else(bad)?;
                let every = Duration::from_secs(secs);
                if every < MIN_INTERVAL {
                    return Err(bad());
                }
                Ok(Schedule::Every(every))
            }
            _ => Err(bad()),
        }
    }

    /// The newest slot at or before `now` (both Unix seconds).
    pub fn slot_at_or_before(&self, now: i64) -> i64 {
        match *self {
            Schedule::Daily { at } => {
                let today = now - now.rem_euclid(DAY) + i64::from(at);
                if today > now {
                    today - DAY
                } else {
                    today
                }
            }
            Schedule::Every(every) => {
                let secs = every.as_secs().max(1) as i64;
                now - now.rem_euclid(secs)
            }
        }
    }

    /// The first slot after `now`.
    pub fn next_after(&self, now: i64) -> i64 {
        match *self {
            Schedule::Daily { .. } => self.slot_at_or_before(now) + DAY,
            Schedule::Every(every) => self.slot_at_or_before(now) + every.as_secs().max(1) as i64,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Schedule::Daily { at } => write!(f, "daily {:02}:{:02} UTC", at / 3600, at % 3600 / 60),
            Schedule::Every(every) => write!(f, "every {}s", every.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_docs_show_and_refuses_the_rest() {
        assert_eq!(
            Schedule::parse("daily 02:30"),
            Ok(Schedule::Daily { at: 9000 })
        );
        assert_eq!(
            Schedule::parse("every 6h"),
            Ok(Schedule::Every(Duration::from_secs(21_600)))
        );
        assert_eq!(
            Schedule::parse(" every  15m "),
            Ok(Schedule::Every(Duration::from_secs(900)))
        );
        assert_eq!(
            Schedule::parse("every 10s"),
            Ok(Schedule::Every(Duration::from_secs(10)))
        );
        for bad in [
            "",
            "daily",
            "daily 2:30",
            "daily 24:00",
            "daily 02:60",
            "daily 02:30 extra",
            "every",
            "every 6",
            "every h",
            "every 5s",
            "every -1h",
            "every 6d",
            "hourly 1",
            "every 999999999999999999h",
            "every 200h",
            "every 1.5h",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let e = Schedule::parse("nightly").expect_err("refused");
        assert!(e.to_string().contains("daily HH:MM"), "{e}");
    }

    #[test]
    fn slots_are_the_same_for_every_replica_and_step_forward() {
        // 2026-12-07 12:00:00 UTC
        let noon = 1_796_644_800;
        let daily = Schedule::Daily { at: 9000 };
        assert_eq!(daily.slot_at_or_before(noon), noon - 12 * 3600 + 9000);
        assert_eq!(daily.next_after(noon), noon + 12 * 3600 + 9000);
        // Before the day's time: yesterday's slot.
        let early = noon - 11 * 3600; // 01:00
        assert_eq!(
            daily.slot_at_or_before(early),
            noon - 12 * 3600 + 9000 - DAY
        );
        // Exactly at the slot: that slot.
        let at = noon - 12 * 3600 + 9000;
        assert_eq!(daily.slot_at_or_before(at), at);

        let every = Schedule::Every(Duration::from_secs(21_600));
        assert_eq!(every.slot_at_or_before(noon), noon);
        assert_eq!(every.slot_at_or_before(noon + 1), noon);
        assert_eq!(every.next_after(noon), noon + 21_600);
        assert_eq!(every.to_string(), "every 21600s");
        assert_eq!(daily.to_string(), "daily 02:30 UTC");
    }
}
