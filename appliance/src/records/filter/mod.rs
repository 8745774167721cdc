//! The record filter language: parsing and validating a JSON filter (hostile
//! input) against a collection's fields, compiling it to a parameterized SQL
//! boolean expression, and the same semantics in Rust ([`matches`]) as an
//! oracle for tests.
//!
//! # The language
//!
//! A filter is one JSON object of exactly one of these shapes:
//!
//! - a condition (leaf): `{"field": "status", "op": "eq", "value": "open"}`.
//!   All three keys are required, `value` included (for `is_null` it is
//!   `true` for "is null" and `false` for "is not null");
//! - `{"and": [f, ...]}` or `{"or": [f, ...]}` with at least one filter;
//! - `{"not": f}`.
//!
//! Any other key, a missing key, a mix of the shapes, a duplicate key or a
//! node that is not an object is refused (`bad_shape`, or `invalid_json` for
//! a duplicate key in filter text). Field names match `FieldRef::name`
//! exactly (case-sensitive).
//!
//! | field type | operators | value |
//! | --- | --- | --- |
//! | text | eq ne lt lte gt gte in contains prefix is_null | a string |
//! | integer | eq ne lt lte gt gte in is_null | a JSON integer (i64) |
//! | decimal | eq ne lt lte gt gte in is_null | a string `-?[0-9]{1,40}(\.[0-9]{1,40})?`, or a JSON number |
//! | boolean | eq ne is_null | true or false |
//! | date | eq ne lt lte gt gte in is_null | `YYYY-MM-DD` (years 0001-9999) |
//! | timestamp | eq ne lt lte gt gte in is_null | RFC 3339 with an offset |
//! | enum | eq ne in is_null | one of the field's values |
//! | json | eq contains is_null | any JSON value but `null` |
//!
//! `in` takes a JSON array of 1 to `max_in` values of the field's type.
//! `null` is never a value: to match missing values use `is_null`.
//!
//! # Semantics: every condition is true or false, never NULL
//!
//! A missing value (SQL NULL; `null` or absent in the record as the API
//! returns it) makes every condition false, except:
//!
//! - `ne` is `IS DISTINCT FROM`: a missing value *is* "not equal" (true);
//! - `is_null` tests for the missing value.
//!
//! So `not` is plain boolean negation: `not(lt x)` matches the records where
//! `lt x` does not, missing values included. `and`/`or` are the usual
//! connectives.
//!
//! Details of each type:
//!
//! - text: `eq`, `ne` and `in` compare exactly. `lt`/`lte`/`gt`/`gte`
//!   compare in byte order (`COLLATE "C"`, which is Unicode code point
//!   order), `contains` is a case-sensitive substring test and `prefix` a
//!   case-sensitive starts-with test. Values may not contain U+0000, which
//!   PostgreSQL text cannot hold.
//! - decimal: compared exactly, as numbers (`0.10` = `0.1`, `-0` = `0`).
//!   Values are kept as canonical text (no leading zeros, no trailing
//!   fractional zeros, no `-0`), bound as text and cast in SQL
//!   (`$n::text::numeric`; a plain `$n::numeric` would make PostgreSQL ask
//!   the client for a binary numeric, which a Rust string cannot provide).
//!   A JSON number that is not an integer has already been read as a 64-bit
//!   float by the JSON layer, so it is accepted only with at most 15
//!   significant digits (where the float still denotes the decimal that was
//!   written); send longer decimals as strings.
//! - timestamp: compared as instants, whatever the offsets. Values are kept
//!   in UTC with microsecond precision (PostgreSQL's): finer digits are
//!   truncated. A value whose UTC time falls outside years 0000-9999 is
//!   refused.
//! - json: `eq` is jsonb equality (numbers compare as numbers, object key
//!   order does not matter), `contains` is jsonb containment (`@>`): an
//!   object contains an object whose every key it has with a containing
//!   value; an array contains an array whose every element is contained in
//!   some element of it; a top-level array also contains a scalar that is
//!   one of its elements; scalars contain equal scalars. A JSON `null` at the
//!   top level of a record's value is the same as a missing value.
//!
//! # SQL
//!
//! [`to_sql`] writes only the trusted `FieldRef::column` expressions,
//! placeholders (`$n`, with a cast to the parameter's type), keywords and
//! punctuation; every user value is a bind parameter (returned in order by
//! [`to_sql`]; bind each with [`Value::as_sql`]). Conditions compile to
//! plain predicates, so that PostgreSQL can answer them from the field's
//! index:
//!
//! | op | SQL |
//! | --- | --- |
//! | eq | `(col = $n::T)` (text, enum: `(col COLLATE "C" = $n::text)`) |
//! | ne | `(col IS DISTINCT FROM $n::T)` (text, enum: `col COLLATE "C"` likewise) |
//! | lt, lte, gt, gte | `(col < $n::T)` (text: `(col COLLATE "C" < $n::text)`) |
//! | in | `(col = ANY($n::T[]))` (text, enum: `(col COLLATE "C" = ANY($n::text[]))`) |
//! | contains | text: `(strpos(col, $n::text) > 0)`; json: `(col @> $n::jsonb)` |
//! | prefix | `starts_with(col, $n::text)` |
//! | is_null | `(col IS NULL)` / `(col IS NOT NULL)` |
//!
//! and `and`/`or`/`not` to `(a AND b)`, `(a OR b)`, `(NOT coalesce(a,
//! false))`. The column types are those of the appliance: text (text and
//! enum), bigint, numeric, boolean, date, timestamptz and jsonb. Text and
//! enum columns are indexed on `(col COLLATE "C")` (the records schema), so
//! every comparison that an index can answer uses that expression; equality
//! is byte equality under any deterministic collation, so `COLLATE "C"`
//! changes no result of `eq`, `ne` or `in`.
//!
//! Why this is exact: with a missing value, a predicate other than `ne` and
//! `is_null` is SQL-unknown (NULL) rather than false. Write `[f]` for a
//! filter's two-valued value (what [`matches`] computes) and `e` for its
//! SQL; by induction, `e` is true where `[f]` is true and false or NULL
//! where `[f]` is false:
//!
//! - a leaf: with a value present it is exactly `[f]`; with the value
//!   missing, `ne` and `is_null` are still exact (true and true/false) and
//!   the others are NULL, where `[f]` is false;
//! - `and`: if `[f]` is true every operand is true, so `e` is; if it is
//!   false some operand is false or NULL, so `e` is false or NULL;
//! - `or`: if `[f]` is true some operand is true, so `e` is; if it is false
//!   every operand is false or NULL, so `e` is false or NULL;
//! - `not g`: `coalesce(e_g, false)` is exactly `[g]`, so
//!   `NOT coalesce(e_g, false)` is exactly `[not g]`, never NULL.
//!
//! A `WHERE` keeps the rows where its condition is true, so it keeps exactly
//! the records [`matches`] accepts. The SQL itself may be NULL, though: use
//! it as a `WHERE` condition, alone or under `AND` with other conditions, or
//! wrap it in `coalesce(…, false)`; never negate or compare it as is.
//!
//! A [`Filter`] built by hand rather than by [`parse`] may hold conditions
//! that do not validate (an unknown field, an operator the type does not
//! have, a value of the wrong type): [`to_sql`] compiles such a condition to
//! `false` and [`matches`] agrees.
//!
//! # Limits
//!
//! [`Limits`]: the filter text's length in characters (`too_long`), the
//! nesting depth of filter nodes, the top-level node being depth 1
//! (`too_deep`), the number of filter nodes, conditions and and/or/not alike
//! (`too_many_nodes`), and the length of an `in` list (`list_too_long`).
//! Strings in values, JSON keys included, are at most 1000 characters
//! (`value_too_long`). A json value nests at most `max_depth` arrays/objects
//! deep (`too_deep`) and holds at most `max_in` array elements and object
//! members in all (`list_too_long`).

mod ast;
mod error;
#[cfg(test)]
mod generative;
mod oracle;
mod parse;
mod sql;
#[cfg(test)]
mod tests;

pub use ast::{FieldRef, Filter, Limits, List, Op, Value};
pub use error::FilterError;
pub use oracle::matches;
pub use parse::{parse, parse_value};
pub use sql::to_sql;
