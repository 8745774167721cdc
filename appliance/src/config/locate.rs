//! Finds the line of a key in a TOML file, so configuration errors can say
//! `file:line` and not only the file.

/// 1-based line on which `key` (dotted, e.g. `tls.cert_file`) is assigned in
/// `text`, or the line of its table header when the key is a table.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut table = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[');
            let name = header.split(']').next().unwrap_or_default();
            table = normalize(name);
            if table == key {
                return Some(index + 1);
            }
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let local = normalize(lhs);
        let full = if table.is_empty() {
            local
        } else {
            format!("{table}.{local}")
        };
        if full == key || key.starts_with(&format!("{full}.")) {
            return Some(index + 1);
        }
    }
    None
}

/// `a . "b"` → `a.b`.
fn normalize(dotted: &str) -> String {
    dotted
        .split('.')
        .map(|part| part.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::line_of_key;

    #[test]
    fn finds_keys_in_tables_and_dotted_keys() {
        let text = "listen = \"x\"\n\n# comment\n[tls]\ncert_file = \"a\"\n[database]\n\"url\" = 'b'\n[http]\ntls.key = 1\n";
        assert_eq!(line_of_key(text, "listen"), Some(1));
        assert_eq!(line_of_key(text, "tls.cert_file"), Some(5));
        assert_eq!(line_of_key(text, "database"), Some(6));
        assert_eq!(line_of_key(text, "database.url"), Some(7));
        assert_eq!(line_of_key(text, "http.tls.key"), Some(9));
        assert_eq!(line_of_key(text, "tls.key_file"), None);
    }
}
