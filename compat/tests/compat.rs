//! compat.toml, the migrations and compat-matrix.md must agree; and the
//! derivations behave as documented on a made-up release history.

use std::collections::BTreeMap;
use std::path::Path;

use compat::{
    check, min_binary_level, render_matrix, required_stops, rollback_window, rolling, CompatData,
    Kind, Migrations, Version,
};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_repository_data_agrees_with_the_migrations_and_the_matrix() {
    let data = CompatData::load(&root().join("compat.toml")).expect("compat.toml");
    let migrations = Migrations::load(&root().join("migrations")).expect("migrations");
    let current = Version::parse(env!("CARGO_PKG_VERSION")).expect("version");
    let problems = check(&data, &migrations, current);
    assert!(problems.is_empty(), "compat.toml disagrees:\n{problems:#?}");
    let matrix =
        std::fs::read_to_string(root().join("compat-matrix.md")).expect("compat-matrix.md");
    assert_eq!(
        matrix,
        render_matrix(&data, &migrations),
        "compat-matrix.md is stale: run `cargo xtask compat-matrix`"
    );
}

/// V1 expand, V2 expand, V3 contract (drops what V2 replaced), V4 expand;
/// releases 1.0 (V1), 1.1 (V2), 1.2 (V3), 1.3 (V4).
fn history(stops_for_1_3: &str) -> (CompatData, Migrations) {
    let kinds = BTreeMap::from([
        (1, Kind::Expand),
        (2, Kind::Expand),
        (3, Kind::Contract),
        (4, Kind::Expand),
    ]);
    let release = |v: &str, level: u32, from: &str, stops: &str| {
        format!(
            "[[release]]\nversion = \"{v}\"\nschema_level = {level}\nupgrade_from = [{from}]\n\
             required_stops = [{stops}]\npostgresql = [15]\nos = [\"debian-12\"]\n\
             kubernetes = {{ min = \"1.27\", max = \"1.30\" }}\n"
        )
    };
    let text = [
        release("1.0.0", 1, "", ""),
        release("1.1.0", 2, "\"1.0.0\"", ""),
        release(
            "1.2.0",
            3,
            "\"1.0.0\", \"1.1.0\"",
            "{ from = \"1.0.0\", via = [\"1.1.0\"] }",
        ),
        release("1.3.0", 4, "\"1.0.0\", \"1.1.0\", \"1.2.0\"", stops_for_1_3),
    ]
    .join("\n");
    (
        CompatData::parse(&text, "test").expect("parse"),
        Migrations { kinds },
    )
}

fn v(text: &str) -> Version {
    Version::parse(text).expect("version")
}

#[test]
fn stops_rollback_windows_and_downtime_follow_from_the_kinds() {
    let (data, migrations) = history("{ from = \"1.0.0\", via = [\"1.1.0\"] }");
    assert_eq!(min_binary_level(&migrations, 2), 0);
    assert_eq!(min_binary_level(&migrations, 3), 3);
    assert_eq!(min_binary_level(&migrations, 4), 3);

    // Expand-only releases roll back without a restore; a contract does not.
    let release = |s: &str| data.release(v(s)).expect("release");
    assert_eq!(
        rollback_window(&data, &migrations, release("1.1.0")),
        vec![v("1.0.0")]
    );
    assert!(rollback_window(&data, &migrations, release("1.2.0")).is_empty());
    assert_eq!(
        rollback_window(&data, &migrations, release("1.3.0")),
        vec![v("1.2.0")]
    );

    // Crossing the contract V3 needs the release before it (1.1) first.
    assert_eq!(
        required_stops(&data, &migrations, v("1.0.0"), v("1.3.0")),
        vec![v("1.1.0")]
    );
    assert!(required_stops(&data, &migrations, v("1.1.0"), v("1.3.0")).is_empty());
    assert!(required_stops(&data, &migrations, v("1.0.0"), v("1.1.0")).is_empty());

    assert!(rolling(&data, &migrations, v("1.0.0"), v("1.1.0")));
    assert!(
        !rolling(&data, &migrations, v("1.1.0"), v("1.2.0")),
        "contract: downtime"
    );
    assert!(rolling(&data, &migrations, v("1.2.0"), v("1.3.0")));

    assert!(
        check(&data, &migrations, v("1.3.0")).is_empty(),
        "{:?}",
        check(&data, &migrations, v("1.3.0"))
    );
    let matrix = render_matrix(&data, &migrations);
    assert!(matrix.contains("| 1.3.0 | 4 | 3 | 1.0.0 via 1.1.0 (downtime), 1.1.0 (downtime), 1.2.0 (rolling) | 1.2.0 |"), "{matrix}");
}

#[test]
fn a_missing_or_wrong_stop_is_reported() {
    let (data, migrations) = history("");
    let problems = check(&data, &migrations, v("1.3.0"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0]
        .0
        .contains("1.3.0: from 1.0.0 the migrations require the stops 1.1.0 (declared: none)"));

    let (data, migrations) = history("{ from = \"1.0.0\", via = [\"1.2.0\"] }");
    assert_eq!(check(&data, &migrations, v("1.3.0")).len(), 1);
}

#[test]
fn the_current_release_must_be_declared_at_the_newest_schema_level() {
    let (data, migrations) = history("{ from = \"1.0.0\", via = [\"1.1.0\"] }");
    let problems = check(&data, &migrations, v("1.4.0"));
    assert!(problems
        .iter()
        .any(|p| p.0.contains("no entry for the current version 1.4.0")));
    let mut more = migrations.clone();
    more.kinds.insert(5, Kind::Expand);
    let problems = check(&data, &more, v("1.3.0"));
    assert!(
        problems
            .iter()
            .any(|p| p.0.contains("the newest migration is V5")),
        "{problems:?}"
    );
}
