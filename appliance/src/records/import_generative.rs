//! Generative tests of the CSV and NDJSON import readers (untrusted: an
//! uploaded file): any bytes, cut into any pieces, give the same rows or
//! the same refusal as the whole file at once, never a panic, and every
//! row's line number is within the file.

use super::import::{Format, Reader, Row};
use super::values::FieldType;
use super::{Collection, Field};
use generative::{run, Rng};

fn collection() -> Collection {
    let field = |id: i64, name: &str, field_type| Field {
        id,
        name: name.to_string(),
        field_type,
        required: false,
        unique: false,
        indexed: false,
        sensitive: false,
        enum_values: Vec::new(),
        default: None,
        hidden: false,
    };
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

/// The rows and the outcome of reading `file` in pieces of the given sizes
/// (cycled), as text to compare.
fn read(c: &Collection, format: Format, file: &[u8], pieces: &[usize]) -> String {
    let mut reader = Reader::new(c, format);
    let mut rows: Vec<Row> = Vec::new();
    let mut at = 0;
    let mut sizes = pieces.iter().cycle();
    while at < file.len() {
        let n = (*sizes.next().unwrap_or(&1)).max(1).min(file.len() - at);
        if let Err(e) = reader.feed(&file[at..at + n], &mut rows) {
            return format!("{rows:?} then refused: {e}");
        }
        at += n;
    }
    match reader.finish(&mut rows) {
        Ok(()) => format!("{rows:?}"),
        Err(e) => format!("{rows:?} then refused: {e}"),
    }
}

fn check(format: Format, rng: &mut Rng, file: &[u8]) {
    let c = collection();
    let whole = read(&c, format, file, &[file.len().max(1)]);
    let pieces: Vec<usize> = (0..1 + rng.below(4)).map(|_| 1 + rng.below(7)).collect();
    assert_eq!(read(&c, format, file, &pieces), whole, "pieces {pieces:?}");
    // Line numbers count the file's lines (a quoted value may span some);
    // CSV also ends a line at a lone CR.
    let breaks = file
        .iter()
        .enumerate()
        .filter(|&(i, &b)| {
            b == b'\n' || (format == Format::Csv && b == b'\r' && file.get(i + 1) != Some(&b'\n'))
        })
        .count();
    let lines = breaks as u64 + 1;
    let mut reader = Reader::new(&c, format);
    let mut rows = Vec::new();
    if reader.feed(file, &mut rows).is_ok() {
        let _ = reader.finish(&mut rows);
    }
    for row in &rows {
        assert!(
            row.line >= 1 && row.line <= lines,
            "line {} of {lines}",
            row.line
        );
    }
}

const CSV: &[&[u8]] = &[
    b"title,n,ok,at,doc\r\nhello,1,true,2026-01-31 12:00:00.5+00,{}\r\n\"q,\"\"x\"\"\",,f,,[1]\n",
    b"\xef\xbb\xbfid,title\n7,a\n8,\"multi\nline\"\n",
    b"n\n1\n-2\nx\n",
];
const CSV_TOKENS: &[&[u8]] = &[
    b",",
    b"\"",
    b"\"\"",
    b"\r\n",
    b"\n",
    b"\r",
    b"\xef\xbb\xbf",
    b"\xff",
    b"id",
    b"title",
    b"null",
    b"{\"a\":",
    b"2026-01-31 12:00:00+05",
    b"9223372036854775808",
];

#[test]
fn generative_csv_reads_the_same_in_any_pieces() {
    run("import csv", CSV, CSV_TOKENS, |rng, file| {
        check(Format::Csv, rng, file)
    });
}

const NDJSON: &[&[u8]] = &[
    b"{\"title\": \"a\", \"n\": 1}\n{\"ok\": true, \"doc\": {\"k\": [1]}}\n",
    b"{\"at\": \"2026-01-31T12:00:00Z\"}\r\n\n{}\n",
    b"[1]\nnull\n{\"n\": \"x\"}",
];
const NDJSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"\n",
    b"\r\n",
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"1e999",
    b"\xff",
    b"null",
    b"\"title\":",
    b"\"unknown\":",
];

#[test]
fn generative_ndjson_reads_the_same_in_any_pieces() {
    run("import ndjson", NDJSON, NDJSON_TOKENS, |rng, file| {
        check(Format::Ndjson, rng, file)
    });
}
