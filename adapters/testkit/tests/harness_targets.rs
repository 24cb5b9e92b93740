//! A `harness = false` test target is compiled without `--test`, so a `#[test]` or
//! `#[tokio::test]` function in it is dropped without a word and never runs. Such a
//! target (a suite file, see `vsync_orchestrate_testkit::harness`) lists its tests
//! in `vsync_orchestrate_testkit::main!` instead; this fails on one left behind, in
//! the adapter crates and in the root crate (tests/*.rs) alike.

use std::path::{Path, PathBuf};

/// The source files of the `[[test]]` targets with `harness = false` in `manifest`.
fn harness_false_targets(manifest: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let dir = manifest.parent().unwrap();
    let mut found = Vec::new();
    // (name, path, harness) of the `[[test]]` table being read.
    let mut table: Option<(Option<String>, Option<String>, bool)> = None;
    let mut close = |table: Option<(Option<String>, Option<String>, bool)>| {
        if let Some((name, path, false)) = table {
            let path = path.unwrap_or_else(|| format!("tests/{}.rs", name.unwrap()));
            found.push(dir.join(path));
        }
    };
    for line in text.lines() {
        let line = line.split(" #").next().unwrap().trim();
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            close(table.take());
            if line == "[[test]]" {
                table = Some((None, None, true));
            }
            continue;
        }
        if let (Some(t), Some((key, value))) = (table.as_mut(), line.split_once('=')) {
            let value = value.trim().trim_matches('"').to_owned();
            match key.trim() {
                "name" => t.0 = Some(value),
                "path" => t.1 = Some(value),
                "harness" => t.2 = value == "true",
                _ => {}
            }
        }
    }
    close(table);
    found
}

fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            manifests(&path, out);
        } else if name == "Cargo.toml" {
            out.push(path);
        }
    }
}

#[test]
fn no_harness_false_target_has_a_test_attribute() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut all = vec![workspace.join("Cargo.toml")];
    manifests(&workspace.join("adapters"), &mut all);
    let targets: Vec<PathBuf> = all.iter().flat_map(|m| harness_false_targets(m)).collect();
    assert!(
        targets
            .iter()
            .any(|t| t.ends_with("secrets_manager_moto.rs")),
        "the suite files were not found among {targets:?}"
    );
    // The root crate's integration tests that need a service are such targets too.
    let root_test = workspace.join("tests/e2e_aws.rs");
    assert!(
        targets.contains(&root_test),
        "the root crate's harness = false tests were not found among {targets:?}"
    );
    let mut dropped = Vec::new();
    for file in &targets {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                dropped.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        dropped.is_empty(),
        "these tests are in harness = false targets and would never run; make them plain \
         `async fn`s listed in vsync_orchestrate_testkit::main!:\n{}",
        dropped.join("\n")
    );
}

/// The calls through which a test skips for want of its service: the testkit's own,
/// and the helpers of the crates' `tests/common` and `tests/support` built on them.
const SKIPS: [&str; 7] = [
    "env_or_skip",
    "tools_or_skip",
    "service::skip",
    "moto_endpoint(",
    "ssh_env(",
    "nspawn::env(",
    "nspawn::{env",
];

/// The other side: libtest reports a skipped test as `ok`, so a file whose tests
/// skip for a service must be a `harness = false` target (where the skip shows as
/// `ignored (<why>)`).
#[test]
fn a_test_file_that_skips_for_a_service_is_a_harness_false_target() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut all = vec![workspace.join("Cargo.toml")];
    manifests(&workspace.join("adapters"), &mut all);
    let mut on_libtest = Vec::new();
    for manifest in &all {
        let harness_false = harness_false_targets(manifest);
        let tests = manifest.parent().unwrap().join("tests");
        let Ok(entries) = std::fs::read_dir(&tests) else {
            continue;
        };
        for entry in entries {
            let file = entry.unwrap().path();
            // This file names the calls, and has no service.
            let this_file = workspace.join(file!());
            if file.extension().is_none_or(|e| e != "rs")
                || harness_false.contains(&file)
                || file == this_file
            {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            if let Some(call) = SKIPS.iter().find(|s| text.contains(*s)) {
                on_libtest.push(format!("{} ({call})", file.display()));
            }
        }
    }
    assert!(
        on_libtest.is_empty(),
        "these test files skip for a service but run under libtest, which reports a skip as \
         `ok`; give each a `[[test]] harness = false` entry and a \
         vsync_orchestrate_testkit::main!:\n{}",
        on_libtest.join("\n")
    );
}
