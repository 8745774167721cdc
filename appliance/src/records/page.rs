//! A page of records serialized straight from the database rows: no
//! per-record map of field names to values is built (a listing is the
//! API's hottest path, and those maps were most of its allocations).
//! The JSON is the same as [`Record`](super::store::Record)'s: the envelope,
//! then `data` with the fields in name order.

use serde::ser::{Error as _, SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use tokio_postgres::Row;

use super::{Collection, FieldType};

/// The rows of a page and how to show them.
pub struct Items {
    /// The fields shown: name, type, column index in the row (by name).
    fields: Vec<(String, FieldType, usize)>,
    rows: Vec<Row>,
}

impl Items {
    /// `rows` selected with the collection's full select list (the
    /// envelope, then every field in order); `shown`: the fields to show
    /// (all when `None`). The caller has checked the columns' types on a
    /// row (`read_value`), so reading cannot meet a wrong type.
    pub fn new(c: &Collection, rows: Vec<Row>, shown: Option<&[String]>) -> Items {
        let mut fields: Vec<(String, FieldType, usize)> = c
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| shown.is_none_or(|names| names.contains(&f.name)))
            .map(|(i, f)| (f.name.clone(), f.field_type, ENVELOPE + i))
            .collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Items { fields, rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Columns before the fields: id, version, created_at, updated_at,
/// created_by, updated_by.
pub const ENVELOPE: usize = 6;

impl Serialize for Items {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.rows.len()))?;
        for row in &self.rows {
            seq.serialize_element(&RowRef { items: self, row })?;
        }
        seq.end()
    }
}

struct RowRef<'a> {
    items: &'a Items,
    row: &'a Row,
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>, E: serde::ser::Error>(
    row: &'a Row,
    i: usize,
) -> Result<T, E> {
    row.try_get(i).map_err(E::custom)
}

impl Serialize for RowRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let row = self.row;
        let mut m = s.serialize_struct("Record", 7)?;
        m.serialize_field("id", &get::<i64, S::Error>(row, 0)?)?;
        m.serialize_field("version", &get::<i64, S::Error>(row, 1)?)?;
        m.serialize_field("created_at", &Stamp(get(row, 2)?))?;
        m.serialize_field("updated_at", &Stamp(get(row, 3)?))?;
        m.serialize_field("created_by", &get::<Option<i64>, S::Error>(row, 4)?)?;
        m.serialize_field("updated_by", &get::<Option<i64>, S::Error>(row, 5)?)?;
        m.serialize_field("data", &DataRef(self))?;
        m.end()
    }
}

struct DataRef<'a>(&'a RowRef<'a>);

impl Serialize for DataRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let RowRef { items, row } = self.0;
        let mut m = s.serialize_map(Some(items.fields.len()))?;
        for (name, t, i) in &items.fields {
            m.serialize_entry(name, &CellRef { row, i: *i, t: *t })?;
        }
        m.end()
    }
}

struct CellRef<'a> {
    row: &'a Row,
    i: usize,
    t: FieldType,
}

impl Serialize for CellRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (row, i) = (self.row, self.i);
        match self.t {
            FieldType::Text | FieldType::Enum | FieldType::Decimal => {
                get::<Option<&str>, S::Error>(row, i)?.serialize(s)
            }
            FieldType::Integer => get::<Option<i64>, S::Error>(row, i)?.serialize(s),
            FieldType::Boolean => get::<Option<bool>, S::Error>(row, i)?.serialize(s),
            FieldType::Date => match get::<Option<Date>, S::Error>(row, i)? {
                Some(d) => {
                    let mut buf = [0u8; 16];
                    let text = write_date(&mut buf, d).map_err(S::Error::custom)?;
                    s.serialize_str(text)
                }
                None => s.serialize_none(),
            },
            FieldType::Timestamp => match get::<Option<OffsetDateTime>, S::Error>(row, i)? {
                Some(t) => Stamp(t).serialize(s),
                None => s.serialize_none(),
            },
            // jsonb's text as it is: no JSON tree built and dropped per
            // value (and numbers keep every digit).
            FieldType::Json => {
                get::<Option<tokio_postgres::types::Json<&RawValue>>, S::Error>(row, i)?
                    .map(|j| j.0)
                    .serialize(s)
            }
        }
    }
}

/// `YYYY-MM-DD`, digits written by hand (years 0 to 9999: what the
/// records API accepts).
fn write_date(buf: &mut [u8; 16], d: Date) -> Result<&str, std::fmt::Error> {
    let year = u32::try_from(d.year()).map_err(|_| std::fmt::Error)?;
    if year > 9999 {
        return Err(std::fmt::Error);
    }
    let digit = |n: u32| b'0' + (n % 10) as u8;
    let (month, day) = (u32::from(u8::from(d.month())), u32::from(d.day()));
    buf[..10].copy_from_slice(&[
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(day / 10),
        digit(day),
    ]);
    std::str::from_utf8(&buf[..10]).map_err(|_| std::fmt::Error)
}

/// A timestamp as RFC 3339 in UTC, formatted on the stack.
struct Stamp(OffsetDateTime);

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        self.0
            .to_offset(time::UtcOffset::UTC)
            .format_into(&mut cursor, &Rfc3339)
            .map_err(S::Error::custom)?;
        let n = cursor.position() as usize;
        s.serialize_str(std::str::from_utf8(&buf[..n]).map_err(S::Error::custom)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_stamps_format_like_the_records_api() {
        let mut buf = [0u8; 16];
        let d = Date::from_calendar_date(2024, time::Month::February, 9).expect("date");
        assert_eq!(write_date(&mut buf, d), Ok("2024-02-09"));
        let d = Date::from_calendar_date(987, time::Month::December, 31).expect("date");
        assert_eq!(write_date(&mut buf, d), Ok("0987-12-31"));
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).expect("t");
        assert_eq!(
            serde_json::to_string(&Stamp(t)).expect("json"),
            format!("\"{}\"", t.format(&Rfc3339).expect("rfc3339"))
        );
    }
}
