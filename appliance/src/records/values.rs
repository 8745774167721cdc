//! The field types of collections and the canonical forms of their values:
//! decimals as canonical text, dates, timestamps (UTC, microseconds), json
//! without NUL. Record writes, schema changes and the filter language all
//! read values through these.

use std::cmp::Ordering;

use serde_json::{Number, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, UtcOffset};

/// Most significant digits of a decimal sent as a (non-integer) JSON number.
pub(crate) const MAX_FLOAT_DIGITS: usize = 15;

/// Most digits on each side of a decimal's point.
pub(crate) const MAX_DECIMAL_DIGITS: usize = 40;

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Integer,
    Decimal,
    Boolean,
    Date,
    Timestamp,
    Enum,
    Json,
}

/// Canonical text of a decimal written `-?[0-9]+(\.[0-9]+)?`, with at most
/// `max_digits` digits on each side of the point when given: no leading
/// zeros, no trailing fractional zeros, no point without a fraction, no
/// `-0`.
pub(crate) fn canonical_decimal(s: &str, max_digits: Option<usize>) -> Option<String> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && max_digits.is_none_or(|max| part.len() <= max)
    };
    if !part_ok(int) || !frac.is_none_or(part_ok) {
        return None;
    }
    let int = match int.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let frac = frac.unwrap_or("").trim_end_matches('0');
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative && !(int == "0" && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// A decimal literal sent as a JSON number: integers exactly; other numbers
/// (read as 64-bit floats) only with at most 15 significant digits.
pub(crate) fn decimal_from_json_number(n: &Number) -> Option<String> {
    if n.is_i64() || n.is_u64() {
        return canonical_decimal(&n.to_string(), Some(MAX_DECIMAL_DIGITS));
    }
    // Rust prints floats without an exponent, as the shortest decimal that
    // reads back as the same float.
    let canonical = canonical_decimal(&format!("{}", n.as_f64()?), Some(MAX_DECIMAL_DIGITS))?;
    let significant = canonical
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(char::from)
        .collect::<String>();
    let significant = significant.trim_start_matches('0').trim_end_matches('0');
    (significant.len() <= MAX_FLOAT_DIGITS).then_some(canonical)
}

/// A JSON number as canonical decimal text, of any length (for record values).
pub(crate) fn decimal_of_number(n: &Number) -> Option<String> {
    if n.is_i64() || n.is_u64() {
        canonical_decimal(&n.to_string(), None)
    } else {
        canonical_decimal(&format!("{}", n.as_f64()?), None)
    }
}

/// Compares canonical decimal texts as numbers.
pub(crate) fn cmp_decimal(a: &str, b: &str) -> Ordering {
    fn magnitude(a: &str, b: &str) -> Ordering {
        let (ai, af) = a.split_once('.').unwrap_or((a, ""));
        let (bi, bf) = b.split_once('.').unwrap_or((b, ""));
        // No leading zeros: a longer integer part is larger. No trailing
        // fractional zeros: fractions compare as strings.
        ai.len()
            .cmp(&bi.len())
            .then_with(|| ai.cmp(bi))
            .then_with(|| af.cmp(bf))
    }
    match (a.strip_prefix('-'), b.strip_prefix('-')) {
        (None, None) => magnitude(a, b),
        (Some(a), Some(b)) => magnitude(b, a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
    }
}

/// A date written exactly `YYYY-MM-DD`, years 0001 to 9999.
pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u16> {
        let part = s.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = number(0..4)?;
    let month = u8::try_from(number(5..7)?).ok()?;
    let day = u8::try_from(number(8..10)?).ok()?;
    if year == 0 {
        return None;
    }
    Date::from_calendar_date(i32::from(year), Month::try_from(month).ok()?, day).ok()
}

/// An RFC 3339 timestamp, normalized.
pub(crate) fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    normalize_timestamp(OffsetDateTime::parse(s, &Rfc3339).ok()?)
}

/// In UTC and truncated to microseconds, as PostgreSQL keeps it; `None` when
/// the UTC time is out of range (binding it would panic).
pub(crate) fn normalize_timestamp(t: OffsetDateTime) -> Option<OffsetDateTime> {
    let utc = t.checked_to_offset(UtcOffset::UTC)?;
    utc.replace_nanosecond(utc.nanosecond() / 1000 * 1000).ok()
}

pub(crate) fn json_has_nul(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains('\0'),
        Json::Array(items) => items.iter().any(json_has_nul),
        Json::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        Json::Null | Json::Bool(_) | Json::Number(_) => false,
    }
}
