//! Reading import files: CSV (RFC 4180, as the exports write it) and
//! NDJSON, fed in pieces (the file arrives in 1 MiB chunks) and turned into
//! one write per record, each with the line it starts on.
//!
//! CSV: the first record is the header of field names (an `id` column, as
//! exports have, is ignored: records get new ids); values are text, read by
//! the field's type: integers and decimals as written, booleans `true`,
//! `false`, `t`, `f`, dates `YYYY-MM-DD`, timestamps RFC 3339 or as
//! PostgreSQL writes them (`2026-01-31 12:00:00+00`), JSON fields as JSON
//! text. An unquoted empty value is null, a quoted one (`""`) the empty
//! string — the distinction the exports (and `COPY`) make. NDJSON: one JSON
//! object per line, keys are field names, values as the records API takes
//! them; blank lines are skipped.

use serde_json::{Map, Value as Json};

use super::{Collection, FieldType};

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// What happens to valid rows when some are invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Any invalid row: nothing is imported (every problem is reported).
    AllOrNothing,
    /// Valid rows are imported, invalid ones reported.
    SkipInvalid,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::AllOrNothing => "all_or_nothing",
            Mode::SkipInvalid => "skip_invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "all_or_nothing" => Some(Mode::AllOrNothing),
            "skip_invalid" => Some(Mode::SkipInvalid),
            _ => None,
        }
    }
}

/// A problem with one row (or, without a field, the whole row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: u64,
    pub field: Option<String>,
    pub message: String,
}

/// One record of the file: its data, or what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: u64,
    pub data: Result<Map<String, Json>, Vec<RowProblem>>,
}

/// Why a file cannot be imported at all.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("the file is empty; a CSV file starts with a header of field names")]
    NoHeader,
    #[error("the header (line 1) names {0:?}, which is not a field of this collection; rename the column or add the field")]
    UnknownColumn(String),
    #[error("the header (line 1) names {0:?} twice")]
    DuplicateColumn(String),
    #[error("the header (line 1) is not valid CSV: {0}")]
    BadHeader(String),
}

/// A CSV value as read: its bytes and whether it was quoted.
#[derive(Debug, Clone, Default, PartialEq)]
struct Value {
    bytes: Vec<u8>,
    quoted: bool,
}

/// A CSV record as read, before its values are interpreted.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    line: u64,
    values: Vec<Value>,
    error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a value.
    Start,
    Unquoted,
    Quoted,
    /// A quote inside a quoted value: the end, or the first of two.
    QuoteInQuoted,
    /// After the closing quote: only a separator or the record's end.
    AfterQuoted,
}

/// A streaming RFC 4180 reader (comma, double quotes; CRLF, LF or CR
/// line ends; a UTF-8 BOM at the start is skipped).
#[derive(Debug)]
struct CsvReader {
    state: State,
    value: Value,
    record: Vec<Value>,
    record_bytes: usize,
    error: Option<String>,
    /// The line the next byte is on (1-based).
    line: u64,
    record_line: u64,
    /// The previous byte (a CRLF is one line end).
    last: u8,
    started: bool,
    bom: Vec<u8>,
}

/// Bytes a record may hold before it is refused (a runaway quote).
const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

impl CsvReader {
    fn new() -> CsvReader {
        CsvReader {
            state: State::Start,
            value: Value::default(),
            record: Vec::new(),
            record_bytes: 0,
            error: None,
            line: 1,
            record_line: 1,
            last: 0,
            started: false,
            bom: Vec::new(),
        }
    }

    fn end_value(&mut self) {
        let v = std::mem::take(&mut self.value);
        self.record.push(v);
        self.state = State::Start;
    }

    fn end_record(&mut self, out: &mut Vec<Record>) {
        self.end_value();
        let values = std::mem::take(&mut self.record);
        self.record_bytes = 0;
        let blank = values.len() == 1 && values[0].bytes.is_empty() && !values[0].quoted;
        if !blank || self.error.is_some() {
            out.push(Record {
                line: self.record_line,
                values,
                error: self.error.take(),
            });
        }
    }

    fn fail(&mut self, message: &str) {
        if self.error.is_none() {
            self.error = Some(message.to_string());
        }
    }

    fn push(&mut self, b: u8) {
        self.value.bytes.push(b);
        self.record_bytes += 1;
        if self.record_bytes > MAX_RECORD_BYTES {
            self.fail("the record is over 4 MiB (is a quote not closed?)");
            self.value.bytes.clear();
            self.record.clear();
            self.record_bytes = 0;
        }
    }

    fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Record>) {
        if !self.started {
            // Skip a UTF-8 byte order mark, even one split across pieces.
            let take = (3 - self.bom.len()).min(bytes.len());
            self.bom.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if !b"\xEF\xBB\xBF".starts_with(&self.bom) {
                self.started = true;
                let pending = std::mem::take(&mut self.bom);
                self.feed_bytes(&pending, out);
            } else if self.bom.len() == 3 {
                self.started = true;
            } else {
                return;
            }
        }
        self.feed_bytes(bytes, out);
    }

    fn feed_bytes(&mut self, bytes: &[u8], out: &mut Vec<Record>) {
        for &b in bytes {
            let crlf = b == b'\n' && self.last == b'\r';
            self.last = b;
            if crlf && self.state == State::Start && self.record.is_empty() {
                // The LF of a CRLF that ended a record.
                continue;
            }
            if self.state == State::Start && self.record.is_empty() && self.value.bytes.is_empty() {
                self.record_line = self.line;
            }
            if b == b'\r' || (b == b'\n' && !crlf) {
                self.line += 1;
            }
            match (self.state, b) {
                (State::Start, b'"') => {
                    self.value.quoted = true;
                    self.state = State::Quoted;
                }
                (
                    State::Start | State::Unquoted | State::AfterQuoted | State::QuoteInQuoted,
                    b',',
                ) => self.end_value(),
                (
                    State::Start | State::Unquoted | State::AfterQuoted | State::QuoteInQuoted,
                    b'\n' | b'\r',
                ) => self.end_record(out),
                (State::Unquoted, b'"') => {
                    self.fail(
                        "a quote inside an unquoted value; quote the whole value and double the \
                         quotes in it",
                    );
                    self.push(b);
                    self.state = State::Unquoted;
                }
                (State::Start | State::Unquoted, _) => {
                    self.push(b);
                    self.state = State::Unquoted;
                }
                (State::Quoted, b'"') => self.state = State::QuoteInQuoted,
                (State::Quoted, _) => self.push(b),
                (State::QuoteInQuoted, b'"') => {
                    self.push(b'"');
                    self.state = State::Quoted;
                }
                (State::QuoteInQuoted | State::AfterQuoted, _) => {
                    self.fail(
                        "text after a closing quote; a quoted value must end at a comma or the \
                         line's end",
                    );
                    self.state = State::AfterQuoted;
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Record>) {
        if !self.started {
            let pending = std::mem::take(&mut self.bom);
            self.started = true;
            self.feed_bytes(&pending, out);
        }
        match self.state {
            State::Quoted => {
                self.fail("the file ends inside a quoted value (a quote is not closed)");
                self.end_record(out);
            }
            State::Start if self.record.is_empty() && self.value.bytes.is_empty() => {}
            _ => self.end_record(out),
        }
    }
}

/// Reads one import file, piece by piece, into rows for a collection.
pub struct Reader<'c> {
    collection: &'c Collection,
    format: Format,
    csv: CsvReader,
    /// The fields the CSV columns hold (`None`: an ignored `id` column).
    columns: Option<Vec<Option<usize>>>,
    /// NDJSON: the incomplete last line.
    pending: Vec<u8>,
    /// NDJSON: the rest of an over-long line (already reported) is skipped.
    skipping: bool,
    ndjson_line: u64,
}

impl<'c> Reader<'c> {
    pub fn new(collection: &'c Collection, format: Format) -> Reader<'c> {
        Reader {
            collection,
            format,
            csv: CsvReader::new(),
            columns: None,
            pending: Vec::new(),
            skipping: false,
            ndjson_line: 0,
        }
    }

    /// Whether the CSV header has been read (and found good).
    pub fn has_header(&self) -> bool {
        self.columns.is_some()
    }

    /// Reads a piece of the file; complete rows are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Row>) -> Result<(), FileError> {
        match self.format {
            Format::Csv => {
                let mut records = Vec::new();
                self.csv.feed(bytes, &mut records);
                self.csv_rows(records, out)
            }
            Format::Ndjson => {
                let mut bytes = bytes;
                if self.skipping {
                    match bytes.iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            self.skipping = false;
                            bytes = &bytes[i + 1..];
                        }
                        None => return Ok(()),
                    }
                }
                self.pending.extend_from_slice(bytes);
                let mut start = 0;
                while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
                    let line = self.pending[start..start + i].to_vec();
                    start += i + 1;
                    self.ndjson_row(&line, out);
                }
                self.pending.drain(..start);
                if self.pending.len() > MAX_RECORD_BYTES {
                    self.ndjson_line += 1;
                    out.push(Row {
                        line: self.ndjson_line,
                        data: Err(vec![problem(
                            self.ndjson_line,
                            None,
                            "the line is over 4 MiB",
                        )]),
                    });
                    self.pending.clear();
                    self.skipping = true;
                }
                Ok(())
            }
        }
    }

    /// The end of the file.
    pub fn finish(&mut self, out: &mut Vec<Row>) -> Result<(), FileError> {
        match self.format {
            Format::Csv => {
                let mut records = Vec::new();
                self.csv.finish(&mut records);
                self.csv_rows(records, out)?;
                if self.columns.is_none() {
                    return Err(FileError::NoHeader);
                }
                Ok(())
            }
            Format::Ndjson => {
                if !self.pending.is_empty() {
                    let line = std::mem::take(&mut self.pending);
                    self.ndjson_row(&line, out);
                }
                Ok(())
            }
        }
    }

    fn csv_rows(&mut self, records: Vec<Record>, out: &mut Vec<Row>) -> Result<(), FileError> {
        for record in records {
            let Some(columns) = &self.columns else {
                self.columns = Some(self.header(record)?);
                continue;
            };
            out.push(self.csv_row(columns, record));
        }
        Ok(())
    }

    fn header(&self, record: Record) -> Result<Vec<Option<usize>>, FileError> {
        if let Some(e) = record.error {
            return Err(FileError::BadHeader(e));
        }
        let mut columns = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for v in &record.values {
            let name = std::str::from_utf8(&v.bytes)
                .map_err(|_| FileError::BadHeader("it is not UTF-8".to_string()))?
                .trim()
                .to_string();
            if seen.contains(&name) {
                return Err(FileError::DuplicateColumn(name));
            }
            if name == "id" {
                columns.push(None);
            } else {
                let i = self
                    .collection
                    .fields
                    .iter()
                    .position(|f| f.name == name)
                    .ok_or_else(|| FileError::UnknownColumn(name.clone()))?;
                columns.push(Some(i));
            }
            seen.push(name);
        }
        Ok(columns)
    }

    fn csv_row(&self, columns: &[Option<usize>], record: Record) -> Row {
        let line = record.line;
        if let Some(e) = record.error {
            return Row {
                line,
                data: Err(vec![problem(line, None, &e)]),
            };
        }
        if record.values.len() != columns.len() {
            return Row {
                line,
                data: Err(vec![problem(
                    line,
                    None,
                    &format!(
                        "{} values, but the header has {} columns",
                        record.values.len(),
                        columns.len()
                    ),
                )]),
            };
        }
        let mut data = Map::new();
        let mut problems = Vec::new();
        for (value, column) in record.values.into_iter().zip(columns) {
            let Some(i) = column else { continue };
            let f = &self.collection.fields[*i];
            match csv_value(f.field_type, value) {
                Ok(v) => {
                    data.insert(f.name.clone(), v);
                }
                Err(message) => problems.push(problem(line, Some(&f.name), &message)),
            }
        }
        Row {
            line,
            data: if problems.is_empty() {
                Ok(data)
            } else {
                Err(problems)
            },
        }
    }

    fn ndjson_row(&mut self, line: &[u8], out: &mut Vec<Row>) {
        self.ndjson_line += 1;
        let n = self.ndjson_line;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = if n == 1 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let data = match serde_json::from_slice::<Json>(line) {
            Ok(Json::Object(map)) => Ok(map),
            Ok(_) => Err(vec![problem(
                n,
                None,
                "expected a JSON object of field names and values",
            )]),
            Err(e) => Err(vec![problem(n, None, &format!("not valid JSON: {e}"))]),
        };
        out.push(Row { line: n, data });
    }
}

fn problem(line: u64, field: Option<&str>, message: &str) -> RowProblem {
    RowProblem {
        line,
        field: field.map(str::to_string),
        message: message.to_string(),
    }
}

/// A CSV value as the JSON the records API takes for the field's type.
fn csv_value(t: FieldType, v: Value) -> Result<Json, String> {
    if v.bytes.is_empty() && !v.quoted {
        return Ok(Json::Null);
    }
    let text = String::from_utf8(v.bytes).map_err(|_| "the value is not UTF-8".to_string())?;
    match t {
        FieldType::Text | FieldType::Enum | FieldType::Date | FieldType::Decimal => {
            Ok(Json::String(text))
        }
        FieldType::Integer => text
            .trim()
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| format!("expected an integer, found {text:?}")),
        FieldType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "t" => Ok(Json::Bool(true)),
            "false" | "f" => Ok(Json::Bool(false)),
            _ => Err(format!("expected true or false (or t, f), found {text:?}")),
        },
        FieldType::Timestamp => Ok(Json::String(rfc3339(&text))),
        FieldType::Json => serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}")),
    }
}

/// `2026-01-31 12:00:00.5+00` (PostgreSQL's text) as RFC 3339; other text
/// unchanged (the records API then says what it expects).
fn rfc3339(text: &str) -> String {
    let b = text.as_bytes();
    if b.len() < 22 || b[10] != b' ' {
        return text.to_string();
    }
    let mut out = format!("{}T{}", &text[..10], &text[11..]);
    // An offset of hours only (`+00`, `-05`) gets its minutes.
    let len = out.len();
    let tail = &out.as_bytes()[len - 3..];
    if (tail[0] == b'+' || tail[0] == b'-') && tail[1].is_ascii_digit() && tail[2].is_ascii_digit()
    {
        out.push_str(":00");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Field;

    fn field(id: i64, name: &str, t: FieldType) -> Field {
        Field {
            id,
            name: name.to_string(),
            field_type: t,
            required: false,
            unique: false,
            indexed: false,
            sensitive: false,
            enum_values: Vec::new(),
            default: None,
            hidden: false,
        }
    }

    fn collection() -> Collection {
        Collection {
            id: 1,
            name: "things".to_string(),
            fields: vec![
                field(1, "title", FieldType::Text),
                field(2, "n", FieldType::Integer),
                field(3, "ok", FieldType::Boolean),
                field(4, "at", FieldType::Timestamp),
                field(5, "doc", FieldType::Json),
            ],
            title: String::new(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn read_in_pieces(c: &Collection, format: Format, file: &[u8], piece: usize) -> Vec<Row> {
        let mut r = Reader::new(c, format);
        let mut rows = Vec::new();
        for chunk in file.chunks(piece) {
            r.feed(chunk, &mut rows).expect("feed");
        }
        r.finish(&mut rows).expect("finish");
        rows
    }

    #[test]
    fn csv_quoting_lines_and_nulls_read_the_same_in_any_pieces() {
        let c = collection();
        let file = "\u{feff}id,title,n,ok,at,doc\r\n\
                    1,\"comma, \"\"quoted\"\"\r\nnewline\",7,t,2026-01-31 12:00:00+00,\"{\"\"a\"\": 1}\"\r\n\
                    2,,,false,,\r\n\
                    3,\"\",-5,TRUE,2026-01-31T12:00:00Z,[1]\n\
                    4,é ü 中文,0,f,,null";
        let expected = vec![
            Row {
                line: 2,
                data: Ok(serde_json::json!({
                    "title": "comma, \"quoted\"\r\nnewline", "n": 7, "ok": true,
                    "at": "2026-01-31T12:00:00+00:00", "doc": {"a": 1}
                })
                .as_object()
                .cloned()
                .expect("object")),
            },
            Row {
                line: 4,
                data: Ok(serde_json::json!({
                    "title": null, "n": null, "ok": false, "at": null, "doc": null
                })
                .as_object()
                .cloned()
                .expect("object")),
            },
            Row {
                line: 5,
                data: Ok(serde_json::json!({
                    "title": "", "n": -5, "ok": true, "at": "2026-01-31T12:00:00Z", "doc": [1]
                })
                .as_object()
                .cloned()
                .expect("object")),
            },
            Row {
                line: 6,
                data: Ok(serde_json::json!({
                    "title": "é ü 中文", "n": 0, "ok": false, "at": null, "doc": null
                })
                .as_object()
                .cloned()
                .expect("object")),
            },
        ];
        for piece in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                read_in_pieces(&c, Format::Csv, file.as_bytes(), piece),
                expected,
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn csv_problems_name_the_line_and_field() {
        let c = collection();
        let file = "title,n,ok\n\
                    fine,1,t\n\
                    bad int,x1,t\n\
                    short,1\n\
                    un\"quoted,1,t\n\
                    \"after\"x,1,t\n\
                    \"multi\nline\",oops,maybe\n\
                    last,2,f\n\
                    \"never closed,1,t\n";
        let rows = read_in_pieces(&c, Format::Csv, file.as_bytes(), 5);
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 9, 10]);
        assert!(rows[0].data.is_ok());
        let problems = |i: usize| rows[i].data.clone().expect_err("a problem");
        assert_eq!(problems(1)[0].field.as_deref(), Some("n"));
        assert!(problems(2)[0]
            .message
            .contains("2 values, but the header has 3"));
        assert!(problems(3)[0]
            .message
            .contains("quote inside an unquoted value"));
        assert!(problems(4)[0].message.contains("after a closing quote"));
        let p = problems(5);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].line, p[0].field.as_deref()), (7, Some("n")));
        assert_eq!(p[1].field.as_deref(), Some("ok"));
        assert!(rows[6].data.is_ok());
        assert!(problems(7)[0]
            .message
            .contains("ends inside a quoted value"));
    }

    #[test]
    fn csv_headers_must_name_fields_once() {
        let c = collection();
        let read = |file: &str| {
            let mut r = Reader::new(&c, Format::Csv);
            let mut rows = Vec::new();
            r.feed(file.as_bytes(), &mut rows)
                .and_then(|_| r.finish(&mut rows))
        };
        assert_eq!(
            read("title,colour\nx,y\n"),
            Err(FileError::UnknownColumn("colour".to_string()))
        );
        assert_eq!(
            read("title,n,title\n"),
            Err(FileError::DuplicateColumn("title".to_string()))
        );
        assert_eq!(read(""), Err(FileError::NoHeader));
        assert_eq!(read("title\n"), Ok(()));
    }

    #[test]
    fn ndjson_lines_are_objects() {
        let c = collection();
        let file = "{\"title\":\"a\",\"n\":1}\r\n\n   \n[1,2]\n{not json}\n{\"title\":\"last\"}";
        let rows = read_in_pieces(&c, Format::Ndjson, file.as_bytes(), 3);
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 4, 5, 6]);
        assert_eq!(
            rows[0].data.as_ref().expect("ok")["n"],
            serde_json::json!(1)
        );
        assert!(rows[1].data.is_err() && rows[2].data.is_err());
        assert_eq!(
            rows[3].data.as_ref().expect("ok")["title"],
            serde_json::json!("last")
        );
    }

    #[test]
    fn an_ndjson_line_over_the_limit_is_one_problem_and_later_lines_keep_their_numbers() {
        let c = collection();
        let mut file = format!("{{\"title\":\"{}\"}}\n", "x".repeat(9 * 1024 * 1024));
        file.push_str("{\"title\":\"after\"}\n");
        let rows = read_in_pieces(&c, Format::Ndjson, file.as_bytes(), 1024 * 1024);
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 2]);
        assert!(rows[0].data.is_err());
        assert_eq!(
            rows[1].data.as_ref().expect("ok")["title"],
            serde_json::json!("after")
        );
    }

    #[test]
    fn postgres_timestamps_become_rfc3339() {
        assert_eq!(
            rfc3339("2026-01-31 12:00:00+00"),
            "2026-01-31T12:00:00+00:00"
        );
        assert_eq!(
            rfc3339("2026-01-31 12:00:00.123456-05"),
            "2026-01-31T12:00:00.123456-05:00"
        );
        assert_eq!(
            rfc3339("2026-01-31 12:00:00+05:30"),
            "2026-01-31T12:00:00+05:30"
        );
        assert_eq!(rfc3339("2026-01-31T12:00:00Z"), "2026-01-31T12:00:00Z");
        assert_eq!(rfc3339("tomorrow"), "tomorrow");
    }
}
