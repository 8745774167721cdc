//! An external PostgreSQL for a new installation: the connection URLs are
//! read from files the admin prepared (checked before anything changes),
//! installed as secrets only root and the service group can read
//! (`/etc/mogothrow77/secrets/`, 0640 root:mogothrow77), and named in the
//! configuration with `url_file` / `migration_url_file`. The URLs (they
//! hold passwords) are never printed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const SECRETS_DIR: &str = contracts::locations::SECRETS_DIR;
const MAX_URL_BYTES: u64 = 4096;

/// One connection URL and where it goes.
pub struct UrlSecret {
    /// The admin's file it was read from.
    pub source: PathBuf,
    value: String,
    /// `url_file` or `migration_url_file`.
    pub key: &'static str,
    /// The inline key the file replaces (`url`, `migration_url`).
    pub inline_key: &'static str,
    /// Its name under the secrets directory.
    pub file_name: &'static str,
}

/// Reads and checks a URL file: a regular file with one PostgreSQL
/// connection string (URL or key=value form).
pub fn read_url_file(
    source: &Path,
    key: &'static str,
    inline_key: &'static str,
    file_name: &'static str,
) -> Result<UrlSecret, String> {
    let shown = source.display();
    let meta = fs::metadata(source).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() || meta.len() > MAX_URL_BYTES {
        return Err(format!(
            "{shown} must be a file of at most {MAX_URL_BYTES} bytes holding one connection URL"
        ));
    }
    let text = fs::read_to_string(source).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let value = text.trim_end_matches(['\n', '\r']).trim();
    let is_url = value.starts_with("postgresql://") || value.starts_with("postgres://");
    let is_key_value = value.contains("host=") || value.contains("dbname=");
    if value.is_empty() || value.contains('\n') || !(is_url || is_key_value) {
        return Err(format!(
            "{shown} does not hold one PostgreSQL connection URL; write one line like \
             postgresql://USER:PASSWORD@HOST:5432/DATABASE?sslmode=require"
        ));
    }
    Ok(UrlSecret {
        source: source.to_path_buf(),
        value: value.to_string(),
        key,
        inline_key,
        file_name,
    })
}

/// Installs the secrets and names them in the configuration. Returns
/// whether anything changed (a running service must then restart).
pub fn install(
    secrets: &[UrlSecret],
    secrets_dir: &Path,
    config: &Path,
    gid: u32,
) -> Result<bool, String> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| format!("{p}: {e}")
    };
    let text = fs::read_to_string(config).map_err(io(config))?;
    let mut new_text = text.clone();
    for s in secrets {
        let path = secrets_dir.join(s.file_name);
        if let Some(edited) =
            name_in_database_table(&new_text, s.key, s.inline_key, &path.display().to_string())?
        {
            new_text = edited;
        }
    }
    fs::create_dir_all(secrets_dir).map_err(io(secrets_dir))?;
    std::os::unix::fs::chown(secrets_dir, Some(0), Some(gid)).map_err(io(secrets_dir))?;
    fs::set_permissions(secrets_dir, fs::Permissions::from_mode(0o750)).map_err(io(secrets_dir))?;
    let mut changed = false;
    for s in secrets {
        let path = secrets_dir.join(s.file_name);
        let wanted = format!("{}\n", s.value);
        if fs::read_to_string(&path).ok().as_deref() == Some(wanted.as_str()) {
            continue;
        }
        write_private(&path, wanted.as_bytes(), gid)?;
        changed = true;
    }
    if new_text != text {
        write_private(config, new_text.as_bytes(), gid)?;
        changed = true;
    }
    Ok(changed)
}

/// Writes `bytes` to `path` through a temporary file renamed over it,
/// 0640 root:`gid` from the start.
pub fn write_private(path: &Path, bytes: &[u8], gid: u32) -> Result<(), String> {
    let tmp = path.with_extension("install-tmp");
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    std::os::unix::fs::fchown(&file, Some(0), Some(gid)).map_err(err)?;
    file.set_permissions(fs::Permissions::from_mode(0o640))
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

/// The configuration with `key = "value"` in its `[database]` table:
/// `Ok(None)` when it says so already; refused when the table sets `key`
/// to something else or sets `inline_key` (the admin configured the
/// database by hand: the installer does not override it).
pub fn name_in_database_table(
    text: &str,
    key: &str,
    inline_key: &str,
    value: &str,
) -> Result<Option<String>, String> {
    name_in_table(text, "database", key, Some(inline_key), value)
}

/// As [`name_in_database_table`], for `key` in `[table]`.
pub fn name_in_table(
    text: &str,
    table: &str,
    key: &str,
    inline_key: Option<&str>,
    value: &str,
) -> Result<Option<String>, String> {
    let wanted = format!("{key} = \"{value}\"");
    let table_header = format!("[{table}]");
    let mut in_table = false;
    let mut header: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_table = trimmed == table_header;
            if in_table {
                header = Some(i);
            }
            continue;
        }
        if !in_table || trimmed.starts_with('#') {
            continue;
        }
        let (name, rest) = trimmed.split_once('=').unwrap_or((trimmed, ""));
        let name = name.trim();
        if name == key {
            if string_value(rest) == Some(value) {
                return Ok(None);
            }
            return Err(format!(
                "the configuration sets {table}.{key} already ({trimmed}); edit it by hand \
                 or remove it to let the installer set it"
            ));
        }
        if Some(name) == inline_key {
            return Err(format!(
                "the configuration sets {table}.{name} already; remove it to let the \
                 installer use the file, or install without --database-url-file"
            ));
        }
    }
    let mut lines: Vec<&str> = text.lines().collect();
    match header {
        Some(i) => lines.insert(i + 1, &wanted),
        None => {
            lines.push("");
            lines.push(&table_header);
            lines.push(&wanted);
        }
    }
    Ok(Some(lines.join("\n") + "\n"))
}

/// A TOML basic or literal string at the start of `rest` (what follows a
/// key's `=`), without its quotes; `None` for anything else.
fn string_value(rest: &str) -> Option<&str> {
    let rest = rest.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = &rest[1..];
    let end = inner.find(quote)?;
    let value = &inner[..end];
    // Escapes would need decoding; a path with them is compared as written.
    (!value.contains('\\')).then_some(value)
}

/// The uid of a user, from `/etc/passwd`.
pub fn user_id(name: &str) -> Result<u32, String> {
    let text = fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    text.lines()
        .find_map(|l| {
            let mut parts = l.split(':');
            (parts.next() == Some(name))
                .then(|| parts.nth(1).and_then(|u| u.parse().ok()))
                .flatten()
        })
        .ok_or_else(|| format!("no user {name} (the package creates it)"))
}

/// The gid of a group, from `/etc/group`.
pub fn group_id(name: &str) -> Result<u32, String> {
    let text = fs::read_to_string("/etc/group").map_err(|e| format!("/etc/group: {e}"))?;
    text.lines()
        .find_map(|l| {
            let mut parts = l.split(':');
            (parts.next() == Some(name))
                .then(|| parts.nth(1).and_then(|g| g.parse().ok()))
                .flatten()
        })
        .ok_or_else(|| format!("no group {name} (the package creates it)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGED: &str = "listen = \"0.0.0.0:8443\"\n\n[database]\n# url_file = \"/x\"\n\
                            auto_migrate = true\n\n[log]\nlevel = \"info\"\n";

    #[test]
    fn the_file_is_named_once_under_the_database_table() {
        let edited = name_in_database_table(PACKAGED, "url_file", "url", "/s/database-url")
            .expect("edit")
            .expect("changed");
        assert_eq!(
            edited,
            "listen = \"0.0.0.0:8443\"\n\n[database]\nurl_file = \"/s/database-url\"\n\
             # url_file = \"/x\"\nauto_migrate = true\n\n[log]\nlevel = \"info\"\n"
        );
        assert_eq!(
            name_in_database_table(&edited, "url_file", "url", "/s/database-url").expect("again"),
            None,
            "running again changes nothing"
        );
        assert!(name_in_database_table(&edited, "url_file", "url", "/other").is_err());
        for written in [
            "url_file=\"/s/database-url\"",
            "url_file = '/s/database-url' # set by hand",
        ] {
            let by_hand = PACKAGED.replace("auto_migrate = true", written);
            assert_eq!(
                name_in_database_table(&by_hand, "url_file", "url", "/s/database-url")
                    .expect("same file"),
                None,
                "{written}"
            );
        }
        let inline = PACKAGED.replace("auto_migrate", "url = \"postgresql://a@b/c\"\nauto_migrate");
        assert!(name_in_database_table(&inline, "url_file", "url", "/s/u")
            .expect_err("refused")
            .contains("database.url already"));
        // `url` under another table is not the database's.
        let elsewhere = format!("{PACKAGED}[smtp]\nurl_file = \"/y\"\n");
        assert!(
            name_in_database_table(&elsewhere, "url_file", "url", "/s/u")
                .expect("edit")
                .is_some()
        );
        let no_table = name_in_database_table("listen = \"x\"\n", "url_file", "url", "/s/u")
            .expect("edit")
            .expect("changed");
        assert!(
            no_table.ends_with("[database]\nurl_file = \"/s/u\"\n"),
            "{no_table}"
        );
    }

    #[test]
    fn the_key_file_is_named_in_the_secrets_table() {
        let added = name_in_table(PACKAGED, "secrets", "key_file", None, "/v/secrets.key")
            .expect("edit")
            .expect("changed");
        assert!(
            added.ends_with("\n[secrets]\nkey_file = \"/v/secrets.key\"\n"),
            "{added}"
        );
        assert_eq!(
            name_in_table(&added, "secrets", "key_file", None, "/v/secrets.key").expect("again"),
            None
        );
        let with_table = format!("{PACKAGED}\n[secrets]\n# key_file = \"/x\"\n");
        let edited = name_in_table(&with_table, "secrets", "key_file", None, "/v/k")
            .expect("edit")
            .expect("changed");
        assert!(
            edited.contains("[secrets]\nkey_file = \"/v/k\"\n# key_file"),
            "{edited}"
        );
        let other = format!("{PACKAGED}\n[secrets]\nkey_file = \"/etc/k\"\n");
        let refused =
            name_in_table(&other, "secrets", "key_file", None, "/v/k").expect_err("refused");
        assert!(refused.contains("secrets.key_file already"), "{refused}");
    }

    #[test]
    fn url_files_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("url");
        let read = |text: &str| {
            fs::write(&file, text).expect("write");
            read_url_file(&file, "url_file", "url", "database-url").map(|s| s.value)
        };
        assert_eq!(
            read("postgresql://app:pw@db:5432/m77?sslmode=require\n").expect("url"),
            "postgresql://app:pw@db:5432/m77?sslmode=require"
        );
        assert!(read("host=db dbname=m77 user=app").is_ok());
        let refused = read("mysql://nope\n").expect_err("refused");
        assert!(
            refused.contains("postgresql://USER:PASSWORD@HOST"),
            "{refused}"
        );
        assert!(read("").is_err());
        assert!(read("postgresql://a@b/c\npostgresql://d@e/f\n").is_err());
        assert!(read_url_file(dir.path(), "url_file", "url", "x").is_err());
    }
}
