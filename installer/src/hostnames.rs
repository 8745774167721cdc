//! The host's fully qualified name in `tls.hostnames`: the name people
//! type reaches the console (requests must name a configured host, else
//! 421) and is in the self-signed certificate. Found without DNS — an
//! air-gapped host may have none — from the kernel's host name and
//! `/etc/hosts`, the way Debian's and RHEL's installers record it.

use std::path::Path;

/// The fully qualified name of the host called `short`: `short` itself
/// when it has a domain, else the first name in `hosts` (the text of
/// `/etc/hosts`) that is `short.<domain>` on a line naming `short`.
pub fn fqdn(short: &str, hosts: &str) -> Option<String> {
    let short = short.trim().trim_end_matches('.');
    if short.is_empty() || short == "localhost" {
        return None;
    }
    if short.contains('.') {
        return Some(short.to_ascii_lowercase());
    }
    let prefix = format!("{short}.");
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let names: Vec<&str> = l.split_whitespace().skip(1).collect();
            names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(short) || n.starts_with(&prefix))
                .then(|| {
                    names
                        .iter()
                        .find(|n| n.len() > prefix.len() && n.starts_with(&prefix))
                        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                })
                .flatten()
        })
        .next()
}

/// This host's fully qualified name, when it has one.
pub fn this_host() -> Option<String> {
    let short = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let hosts = std::fs::read_to_string(Path::new("/etc/hosts")).unwrap_or_default();
    fqdn(&short, &hosts)
}

/// The configuration with `name` in its `[tls]` table's `hostnames`:
/// `Ok(None)` when it is there already, an error when `hostnames` is
/// written in a form this edit does not take on (several lines).
pub fn add_to_config(text: &str, name: &str) -> Result<Option<String>, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut in_tls = false;
    let mut tls_header = None;
    for (i, line) in lines.iter_mut().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_tls = trimmed == "[tls]";
            if in_tls {
                tls_header = Some(i);
            }
            continue;
        }
        if !in_tls {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once('=') else {
            continue;
        };
        if key.trim() != "hostnames" {
            continue;
        }
        let rest = rest.split('#').next().unwrap_or_default().trim();
        let Some(inner) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
            return Err(format!(
                "tls.hostnames is not a one-line list ({trimmed}); add \"{name}\" to it by hand"
            ));
        };
        let names: Vec<String> = inner
            .split(',')
            .map(|n| n.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Ok(None);
        }
        let mut quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        quoted.push(format!("\"{name}\""));
        *line = format!("hostnames = [{}]", quoted.join(", "));
        return Ok(Some(lines.join("\n") + "\n"));
    }
    let wanted = format!("hostnames = [\"{name}\"]");
    match tls_header {
        Some(i) => lines.insert(i + 1, wanted),
        None => {
            lines.push(String::new());
            lines.push("[tls]".to_string());
            lines.push(wanted);
        }
    }
    Ok(Some(lines.join("\n") + "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "127.0.0.1\tlocalhost\n127.0.1.1\tapp01.corp.example\tapp01\n\
                         # 10.0.0.9 app01.old.example app01\n::1 localhost ip6-localhost\n";

    #[test]
    fn the_fqdn_comes_from_the_host_name_or_etc_hosts() {
        assert_eq!(
            fqdn("app01\n", HOSTS).as_deref(),
            Some("app01.corp.example")
        );
        assert_eq!(
            fqdn("App01.Corp.Example", "").as_deref(),
            Some("app01.corp.example")
        );
        assert_eq!(fqdn("app01", "127.0.0.1 localhost\n"), None);
        assert_eq!(fqdn("app02", HOSTS), None, "another host's line");
        assert_eq!(fqdn("localhost", HOSTS), None);
        assert_eq!(fqdn("", HOSTS), None);
    }

    #[test]
    fn the_name_is_added_to_the_tls_table_once() {
        let packaged = "# c\n\n[tls]\n# note\nhostnames = [\"localhost\"]\n\n[database]\n";
        let edited = add_to_config(packaged, "app01.corp.example")
            .expect("edit")
            .expect("changed");
        assert_eq!(
            edited,
            "# c\n\n[tls]\n# note\nhostnames = [\"localhost\", \"app01.corp.example\"]\n\n[database]\n"
        );
        assert_eq!(add_to_config(&edited, "APP01.corp.example"), Ok(None));

        let none = add_to_config("[tls]\ncert_file = \"/c\"\n", "h.example").expect("edit");
        assert_eq!(
            none.as_deref(),
            Some("[tls]\nhostnames = [\"h.example\"]\ncert_file = \"/c\"\n")
        );
        let no_table = add_to_config("listen = \"x\"\n[database]\nurl = \"u\"\n", "h.example")
            .expect("edit")
            .expect("changed");
        assert!(
            no_table.ends_with("\n[tls]\nhostnames = [\"h.example\"]\n"),
            "{no_table}"
        );
        // A hostnames key of another table is not the one.
        let other = add_to_config("[smtp]\nhostnames = [\"x\"]\n", "h.example")
            .expect("edit")
            .expect("changed");
        assert!(
            other.ends_with("[tls]\nhostnames = [\"h.example\"]\n"),
            "{other}"
        );
        assert!(add_to_config("[tls]\nhostnames = [\n  \"a\",\n]\n", "h.example").is_err());
    }
}
