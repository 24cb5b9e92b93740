//! `src/adapters.rs` is the one list of adapters; everything else that names them is
//! held to it here: the root `Cargo.toml`'s features (and through its `default` list
//! the feature builds in `.ci/run`), the crate directories under `adapters/`, the
//! adapter table in `README.md` and the `validate` snapshot. Adding an adapter is a
//! crate, a registry line and its feature (`adapters/README.md`, "Registering"); each
//! test below names what is missing where.

use std::collections::BTreeSet;
use std::path::Path;
use vsync_orchestrate::adapters::{known, STORES};

/// Default features that are not adapters: the S3 vault backend.
const NOT_ADAPTERS: &[&str] = &["s3"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn cargo_features() -> toml::Table {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    manifest["features"].as_table().unwrap().clone()
}

fn strings(v: &toml::Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn registry_features() -> BTreeSet<String> {
    known().map(|(_, _, f)| f.to_owned()).collect()
}

/// Each entry of `a` not in `b`, one per line.
fn missing(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

#[test]
fn no_type_is_registered_twice() {
    let mut seen = BTreeSet::new();
    for (t, kind, _) in known() {
        assert!(seen.insert((t, kind)), "{kind} `{t}` is registered twice");
    }
}

/// `.ci/run` builds each feature of `default` alone, so this is what makes the
/// registry drive the CI feature list.
#[test]
fn cargo_default_features_are_the_registry_s_and_s3() {
    let features = cargo_features();
    let default = strings(&features["default"]);
    let registry = registry_features();
    let declared: BTreeSet<String> = features.keys().cloned().collect();
    let extra: BTreeSet<String> = NOT_ADAPTERS.iter().map(|s| s.to_string()).collect();
    for f in &extra {
        assert!(!registry.contains(f), "`{f}` is not an adapter feature");
    }

    let mut problems = Vec::new();
    for f in missing(&registry, &declared) {
        problems.push(format!(
            "src/adapters.rs uses feature `{f}`, which Cargo.toml's [features] does not declare"
        ));
    }
    for f in missing(&registry, &default) {
        problems.push(format!(
            "feature `{f}` (src/adapters.rs) is not in Cargo.toml's `default` (nor built alone by .ci/run)"
        ));
    }
    let expected_default: BTreeSet<String> = registry.union(&extra).cloned().collect();
    for f in missing(&default, &expected_default) {
        problems.push(format!(
            "Cargo.toml's `default` has `{f}`, which no line of src/adapters.rs uses"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The feature `x` is the crate `adapters/x` (`vsync-orchestrate-x`), which the
/// workspace's `adapters/*` glob makes a member.
#[test]
fn every_adapter_feature_is_its_crate_under_adapters() {
    let features = cargo_features();
    let mut problems = Vec::new();
    for f in registry_features() {
        let manifest = root().join("adapters").join(&f).join("Cargo.toml");
        if !manifest.is_file() {
            problems.push(format!("feature `{f}`: no {}", manifest.display()));
        }
        let dep = format!("dep:vsync-orchestrate-{f}");
        let enables = features.get(&f).map(strings).unwrap_or_default();
        if !enables.contains(&dep) {
            problems.push(format!(
                "feature `{f}` in Cargo.toml does not enable `{dep}` (it has {enables:?})"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `(type, kind, feature)` of each row of the table under README.md's "## Adapters".
fn readme_table() -> BTreeSet<(String, String, String)> {
    let readme = read("README.md");
    let section = readme
        .split_once("\n## Adapters\n")
        .expect("README.md has no \"## Adapters\" section")
        .1;
    let section = section.split("\n#").next().unwrap();
    let code = |cell: &str| cell.trim().trim_matches('`').to_owned();
    // The section's first table (others may follow it, e.g. how real each fake is).
    let mut lines = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let header = lines
        .next()
        .expect("no table under README.md's \"## Adapters\"");
    assert_eq!(
        header, "| `type` | kind | plan keys | feature | status |",
        "README.md's adapter table has other columns than this test reads"
    );
    lines.next(); // |---|---|
    let mut rows = BTreeSet::new();
    for line in lines {
        // Plan keys may hold anything: take the type and kind from the front and
        // the feature from the back (`| type | kind | keys | feature | status |`).
        let cells: Vec<&str> = line.split('|').collect();
        assert!(cells.len() >= 7, "README.md adapter row: {line}");
        let row = (code(cells[1]), code(cells[2]), code(cells[cells.len() - 3]));
        assert!(rows.insert(row.clone()), "README.md lists {row:?} twice");
    }
    assert!(!rows.is_empty(), "no rows in README.md's adapter table");
    rows
}

#[test]
fn the_readme_adapter_table_is_the_registry() {
    let table = readme_table();
    let registry: BTreeSet<(String, String, String)> = known()
        .map(|(t, k, f)| (t.to_owned(), k.to_owned(), f.to_owned()))
        .collect();
    let mut problems = Vec::new();
    for (t, k, f) in registry.difference(&table) {
        problems.push(format!(
            "README.md's adapter table has no row for {k} `{t}` with feature `{f}` (src/adapters.rs has it)"
        ));
    }
    for (t, k, f) in table.difference(&registry) {
        problems.push(format!(
            "README.md's adapter table has {k} `{t}` with feature `{f}`, which src/adapters.rs does not"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `tests/fixtures/typo-type.toml` names a store type that does not exist, and
/// `validate` answers with every store type of the build, in registry order (the
/// snapshot in `tests/cli.rs` shows that list as a placeholder, so a new store
/// changes no snapshot).
#[test]
fn validate_lists_the_registry_s_stores() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
        .current_dir(root())
        .args(["validate", "tests/fixtures/typo-type.toml"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let marker = "unknown variant `aws_secret_manager`, expected one of ";
    let line = text
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("validate did not name the store types:\n{text}"));
    let listed: Vec<&str> = line
        .split_once(marker)
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .split(", ")
        .map(|s| s.trim_matches('`'))
        .collect();
    // The stores this build has (serde lists only the variants compiled in).
    let registry: Vec<&str> = STORES
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| vsync_orchestrate::adapters::not_built(t).is_none())
        .collect();
    assert_eq!(
        listed, registry,
        "validate lists other store types than src/adapters.rs"
    );
}
