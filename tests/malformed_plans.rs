//! The malformed-plan corpus (`tests/malformed_plans/`): every file is refused by
//! `vsync-orchestrate validate` with exit 10 and a message that says where
//! (`file:line:column`) and what (the table below), never a panic, never the secret
//! a file holds, in bounded output and time. Files that are not text at all (a
//! directory, a 10 MB file, `/dev/zero`, a missing path) are made here: each names
//! the file and why.

use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CORPUS: &str = "tests/malformed_plans";
/// Whatever a plan holds, the answer fits in this much stderr.
const MAX_STDERR: usize = 64 * 1024;
/// And comes back this fast (a debug build on a busy CI machine).
const MAX_TIME: Duration = Duration::from_secs(10);

/// File → what its message must say. An adapter type whose feature is off in this
/// build gives "needs a build with the `<feature>` feature" at the same place
/// instead: the third column names that feature.
const EXPECT: &[(&str, &str, Option<&str>)] = &[
    // syntax
    ("syntax-unclosed-string.toml", "invalid basic string", None),
    ("syntax-missing-equals.toml", "expected `.`, `=`", None),
    ("syntax-unclosed-header.toml", "invalid table header", None),
    ("syntax-unclosed-array.toml", "invalid array", None),
    (
        "syntax-unclosed-inline-table.toml",
        "invalid inline table",
        None,
    ),
    ("syntax-bare-value.toml", "invalid string", None),
    ("syntax-bad-escape.toml", "invalid escape sequence", None),
    ("syntax-trailing-garbage.toml", "expected newline", None),
    (
        "syntax-multiline-inline-table.toml",
        "invalid inline table",
        None,
    ),
    ("syntax-bad-number.toml", "invalid integer", None),
    ("syntax-integer-overflow.toml", "number too large", None),
    ("syntax-bad-date.toml", "expected newline", None),
    ("syntax-control-char.toml", "invalid basic string", None),
    ("syntax-nul-byte.toml", "expected newline", None),
    ("syntax-header-with-value.toml", "expected newline", None),
    (
        "syntax-array-of-tables-typo.toml",
        "invalid table header",
        None,
    ),
    ("syntax-unicode-key.toml", "expected `.`, `=`", None),
    ("syntax-only-equals.toml", "invalid key", None),
    ("syntax-key-at-eof.toml", "a value is missing", None),
    // empty and missing
    ("empty.toml", "missing field `env`", None),
    ("comments-only.toml", "missing field `env`", None),
    ("missing-env.toml", "missing field `env`", None),
    ("missing-vault.toml", "missing field `vault`", None),
    ("store-missing-type.toml", "missing field `type`", None),
    (
        "command-target-missing-argv.toml",
        "missing field `argv`",
        None,
    ),
    // duplicates
    (
        "duplicate-table-vault.toml",
        "invalid table header: duplicate key `vault`",
        None,
    ),
    ("duplicate-key-top.toml", "duplicate key `env`", None),
    ("duplicate-key-vault.toml", "duplicate key `prefix`", None),
    ("duplicate-key-inline.toml", "duplicate key `env`", None),
    (
        "duplicate-table-verify.toml",
        "duplicate key `verify`",
        None,
    ),
    (
        "duplicate-store-as-table.toml",
        "duplicate key `store`",
        None,
    ),
    (
        "duplicate-dotted-and-table.toml",
        "duplicate key `passphrase`",
        None,
    ),
    (
        "duplicate-store-target.toml",
        "already written by [[store]] #1",
        None,
    ),
    ("duplicate-command-target-name.toml", "appears twice", None),
    // unknown keys, at every level
    (
        "unknown-top-level-key.toml",
        "unknown field `enviroment`",
        None,
    ),
    ("unknown-table-lock.toml", "unknown field `lock`", None),
    ("unknown-vault-key.toml", "unknown field `bukcet`", None),
    (
        "unknown-passphrase-key.toml",
        "unknown field `rotate_every`",
        None,
    ),
    (
        "unknown-old-source-key.toml",
        "unknown key `enviroment`",
        None,
    ),
    ("unknown-new-source-key.toml", "unknown key `random`", None),
    ("unknown-generate-key.toml", "unknown field `charset`", None),
    (
        "unknown-salt-source-key.toml",
        "unknown key `variable`",
        None,
    ),
    ("unknown-config-source-key.toml", "unknown key `path`", None),
    (
        "source-two-keys-salt.toml",
        "`env` and `file` are both set",
        None,
    ),
    ("source-empty-table.toml", "an empty table", None),
    ("unknown-store-file-key.toml", "unknown field `owner`", None),
    (
        "unknown-store-aws-key.toml",
        "unknown field `secretid`",
        Some("aws"),
    ),
    (
        "unknown-store-gcp-key.toml",
        "unknown field `project_id`",
        Some("gcp"),
    ),
    (
        "unknown-store-vps-file-key.toml",
        "unknown field `permissions`",
        Some("ssh"),
    ),
    ("unknown-store-vps-host-key.toml", "a host is", Some("ssh")),
    (
        "unknown-store-type.toml",
        "unknown variant `hashicorp_vault`",
        None,
    ),
    (
        "unknown-restart-command-key.toml",
        "unknown field `retries`",
        None,
    ),
    (
        "unknown-restart-command-target-key.toml",
        "unknown field `cwd`",
        None,
    ),
    (
        "unknown-restart-systemd-key.toml",
        "unknown field `restart_mode`",
        Some("ssh"),
    ),
    (
        "unknown-restart-ecs-key.toml",
        "unknown field `force`",
        Some("aws"),
    ),
    (
        "unknown-restart-kubernetes-key.toml",
        "unknown field `replicas`",
        Some("kubernetes"),
    ),
    (
        "unknown-restart-cloud-run-key.toml",
        "unknown field `zone`",
        Some("gcp"),
    ),
    ("unknown-restart-type.toml", "unknown variant `nomad`", None),
    (
        "unknown-restart-type-alias.toml",
        "unknown variant `k8s`, expected one of",
        None,
    ),
    ("unknown-verify-key.toml", "unknown field `retries`", None),
    ("unknown-schedule-key.toml", "unknown field `every`", None),
    (
        "unknown-notify-key.toml",
        "unknown field `slack_webhook`",
        None,
    ),
    // wrong types
    (
        "wrong-type-env.toml",
        "`env` must be a string, like \"…\"; here it is the number 42",
        None,
    ),
    (
        "wrong-type-vault-string.toml",
        "`vault` must be a table: write [vault]",
        None,
    ),
    (
        "wrong-type-iterations-float.toml",
        "`vault.iterations` must be a whole number, like 3; here it is the number 600000.0",
        None,
    ),
    (
        "wrong-type-audit.toml",
        "`vault.audit` must be true or false; here it is the string \"yes\"",
        None,
    ),
    (
        "wrong-type-store-table.toml",
        "`store` must be a list of tables: write each one as a [[store]] table",
        None,
    ),
    (
        "wrong-type-health.toml",
        "`verify.health` must be a list of strings, like [\"a\", \"b\"]",
        None,
    ),
    (
        "wrong-type-samples-negative.toml",
        "`verify.samples` must be a whole number, 0 or more; here it is -1",
        None,
    ),
    (
        "wrong-type-length-string.toml",
        "`passphrase.new.generate.length` must be a whole number",
        None,
    ),
    (
        "wrong-type-restart-batch-size.toml",
        "`batch_size` must be a whole number, like 3; here it is the string \"2\"",
        Some("ssh"),
    ),
    (
        "wrong-type-hosts-string.toml",
        "`hosts` must be a list of strings, like [\"a\", \"b\"]; here it is the string \"web-1\"",
        Some("ssh"),
    ),
    ("wrong-type-old-number.toml", "passphrase.old must be", None),
    (
        "wrong-type-mode-number.toml",
        "write the mode as an octal string",
        None,
    ),
    (
        "wrong-type-argv-string.toml",
        "`targets.argv` must be a list of strings",
        None,
    ),
    (
        "wrong-type-parallel.toml",
        "`parallel` must be true or false",
        None,
    ),
    (
        "wrong-type-meta-value.toml",
        "`passphrase.meta.ticket` must be a string",
        None,
    ),
    ("wrong-type-checksum.toml", "unknown variant `always`", None),
    ("wrong-type-layout.toml", "unknown variant `sideways`", None),
    (
        "wrong-type-command-string.toml",
        "passphrase.old.command",
        None,
    ),
    (
        "wrong-type-type-number.toml",
        "`type` must be a string naming one of the types, like \"file\"",
        None,
    ),
    // literal secrets: refused, and never repeated (SECRETS below)
    (
        "literal-secret-old.toml",
        "a plan never contains a passphrase",
        None,
    ),
    (
        "literal-secret-new.toml",
        "a plan never contains a passphrase",
        None,
    ),
    ("literal-secret-value-key.toml", "unknown key `value`", None),
    (
        "literal-secret-passphrase-string.toml",
        "`passphrase` must be a table: write [passphrase]",
        None,
    ),
    (
        "literal-secret-generate-string.toml",
        "passphrase.new.generate",
        None,
    ),
    ("literal-secret-env-array.toml", "passphrase.old.env", None),
    (
        "literal-secret-vault-key.toml",
        "unknown field `passphrase`",
        None,
    ),
    (
        "literal-secret-old-number.toml",
        "passphrase.old must be",
        None,
    ),
    // absurd durations and sizes
    (
        "absurd-vault-timeout.toml",
        "vault.timeout: \"999999y\" is absurdly long: at most \"24h\"",
        None,
    ),
    (
        "absurd-verify-timeout-overflow.toml",
        "is not a duration",
        None,
    ),
    (
        "absurd-verify-interval-negative.toml",
        "is not a duration",
        None,
    ),
    (
        "absurd-verify-interval-unit.toml",
        "is not a duration",
        None,
    ),
    (
        "absurd-verify-samples.toml",
        "verify.samples 4000000000 is absurd",
        None,
    ),
    (
        "absurd-schedule-min-age.toml",
        "schedule.min_age: \"999999y\" is absurdly long",
        None,
    ),
    (
        "absurd-restart-timeout.toml",
        "timeout: 999999years is absurdly long: at most \"24h\"",
        None,
    ),
    (
        "absurd-restart-timeout-zero.toml",
        "timeout must be positive",
        None,
    ),
    (
        "absurd-iterations-high.toml",
        "vault.iterations 4294967295 is absurd",
        None,
    ),
    (
        "absurd-iterations-overflow.toml",
        "`vault.iterations` = 99999999999 is too large: at most 4294967295",
        None,
    ),
    (
        "absurd-iterations-zero.toml",
        "vault.iterations must be positive",
        None,
    ),
    (
        "absurd-iterations-negative.toml",
        "`vault.iterations` must be a whole number, 0 or more",
        None,
    ),
    ("absurd-length-zero.toml", "0 characters is too short", None),
    ("absurd-length-one.toml", "1 characters is too short", None),
    ("absurd-length-huge.toml", "above 256", None),
    (
        "absurd-length-float.toml",
        "`passphrase.new.generate.length` must be a whole number",
        None,
    ),
    (
        "absurd-length-negative.toml",
        "`passphrase.new.generate.length` must be a whole number, 0 or more",
        None,
    ),
    ("absurd-note-long.toml", "longer than 1024", None),
    ("absurd-mode-setuid.toml", "not an octal file mode", None),
    (
        "absurd-mode-world-readable.toml",
        "gives others access",
        None,
    ),
    ("absurd-deep-nesting.toml", "recursion limit", None),
    ("absurd-long-line.toml", "vault.prefix \"aaaa", None),
    // relative paths
    (
        "relative-vault-dir.toml",
        "vault.dir vault is relative",
        None,
    ),
    (
        "relative-state-dir.toml",
        "state_dir state is relative",
        None,
    ),
    ("relative-state-dir-tilde.toml", "`~` is not expanded", None),
    // semantic: a valid TOML document, a plan that cannot run
    ("semantic-no-store.toml", "no [[store]]", None),
    ("semantic-vault-both.toml", "not both", None),
    ("semantic-vault-inline.toml", "not both", None),
    ("semantic-prefix-slash.toml", "must end with \"/\"", None),
    ("semantic-env-uppercase.toml", "must match ^[a-z]", None),
    (
        "semantic-health-url.toml",
        "must start with http:// or https://",
        None,
    ),
    (
        "semantic-two-salts.toml",
        "set only one of vault.salt",
        None,
    ),
    ("semantic-empty-command.toml", "command is empty", None),
    ("semantic-empty-argv.toml", "empty argv", None),
    // several at once: the first in the file here, every one in
    // `every_problem_is_reported_in_the_order_of_the_file`
    ("several-problems.toml", "env \"Prod\" must match", None),
    // not text: each names the first byte that is not UTF-8, by line and column
    ("non-utf8-latin1.toml", "not UTF-8 text: byte 0xE9", None),
    ("non-utf8-utf16.toml", "UTF-16", None),
    ("binary-garbage.bin", "not UTF-8 text", None),
    ("binary-gzip.toml.gz", "looks like binary data", None),
    ("binary-elf.toml", "looks like binary data", None),
];

/// Secrets written into corpus files: never on stdout or stderr.
const SECRETS: &[&str] = &[
    "Zq8-correct-horse-battery",
    "Tr0ub4dor-and-3-zebras",
    "Vq3-unguessable-horse",
    "Kp7-top-level-secret-zebra",
    "Gx5-generated-by-hand-lol",
    "Ew2-not-a-variable-name",
    "Vk9-vault-level-secret",
    "31415926535897932",
    "not-a-key",
];

/// Whether this build has the adapters of feature `f`, from the registry (no list
/// of features to keep here).
fn feature_on(f: &str) -> bool {
    let mut of_f = vsync_orchestrate::adapters::known()
        .filter(|(_, _, feature)| *feature == f)
        .peekable();
    assert!(of_f.peek().is_some(), "no adapter has the feature {f}");
    of_f.any(|(t, _, _)| vsync_orchestrate::adapters::not_built(t).is_none())
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR")
        .env_remove("RUST_BACKTRACE");
    c
}

/// `validate PATH`: the output, checked for the properties every refusal has.
fn validate(path: &Path) -> (Output, String) {
    let start = Instant::now();
    let out = bin().arg("validate").arg(path).output().unwrap();
    let took = start.elapsed();
    // validate's verdicts are its result: stdout (called `stderr` here from when
    // they were printed there); nothing else is printed.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stdout).into_owned();
    let name = path.display();
    assert_eq!(out.status.code(), Some(10), "{name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert!(
        out.stdout.len() < MAX_STDERR,
        "{name}: {} bytes of output",
        out.stdout.len()
    );
    assert!(took < MAX_TIME, "{name}: took {took:?}");
    for s in SECRETS {
        assert!(
            !stderr.contains(s),
            "{name}: the secret {s:?} was echoed: {stderr}"
        );
    }
    (out, stderr)
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS))
            .unwrap()
            .map(|e| Path::new(CORPUS).join(e.unwrap().file_name()))
            .collect();
    files.sort();
    files
}

#[test]
fn the_table_and_the_corpus_agree() {
    let files: Vec<String> = corpus()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(files.len() >= 60, "{} files", files.len());
    for f in &files {
        assert!(
            EXPECT.iter().any(|(n, _, _)| n == f),
            "{f} has no expectation"
        );
    }
    for (n, _, _) in EXPECT {
        assert!(files.iter().any(|f| f == n), "{n} is not in {CORPUS}");
    }
}

#[test]
fn every_malformed_plan_is_refused_with_its_place_and_its_reason() {
    let mut failures = Vec::new();
    for path in corpus() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some((_, what, feature)) = EXPECT.iter().find(|(n, _, _)| *n == name) else {
            continue; // the_table_and_the_corpus_agree names it
        };
        let (_, stderr) = validate(&path);
        let located = Regex::new(&format!(
            r"(?m)^{}:\d+:\d+: error: ",
            regex::escape(&path.display().to_string())
        ))
        .unwrap();
        if !located.is_match(&stderr) {
            failures.push(format!("{name}: no file:line:column in {stderr:?}"));
        }
        let expected = match feature {
            Some(f) if !feature_on(f) => format!("needs a build with the `{f}` feature"),
            _ => what.to_string(),
        };
        if !stderr.contains(&expected) {
            failures.push(format!("{name}: expected {expected:?} in {stderr:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The whole corpus in one call, as CI on a plan repository runs it: exit 10, one
/// answer per file, and JSON that parses.
#[test]
fn the_whole_corpus_at_once() {
    let files = corpus();
    let out = bin().arg("validate").args(&files).output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    let stderr = String::from_utf8_lossy(&out.stdout);
    for f in &files {
        assert!(
            stderr.contains(&f.display().to_string()),
            "{} not named",
            f.display()
        );
    }
    let json = bin()
        .args(["validate", "--output", "json"])
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(10));
    let stdout = String::from_utf8(json.stdout).unwrap();
    for s in SECRETS {
        assert!(!stdout.contains(s), "the secret {s:?} is in the JSON");
    }
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let plans = v["plans"].as_array().unwrap();
    assert_eq!(plans.len(), files.len());
    assert!(plans.iter().all(|p| p["ok"] == false), "{v}");
}

/// Not a plan file at all: the answer names the file and says why, quickly, without
/// reading more than a plan's worth of bytes.
#[test]
fn paths_that_are_not_plan_files_name_the_file_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plan-dir.toml");
    std::fs::create_dir(&dir).unwrap();
    let big = tmp.path().join("ten-megabytes.toml");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        f.write_all(b"env = \"prod\"\n").unwrap();
        let line = [b"# padding ".as_slice(), &[b'x'; 100], b"\n"].concat();
        while f.get_ref().metadata().unwrap().len() < 10 * 1024 * 1024 {
            for _ in 0..1000 {
                f.write_all(&line).unwrap();
            }
            f.flush().unwrap();
        }
    }
    let missing = tmp.path().join("no-such-plan.toml");
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (dir, "it is a directory"),
        (big, "a plan is at most 1048576 bytes"),
        (missing, "No such file"),
    ];
    if Path::new("/dev/zero").exists() {
        // No length to check first: the read itself must stop.
        cases.push((PathBuf::from("/dev/zero"), "more than 1048576 bytes"));
    }
    for (path, why) in cases {
        let (_, stderr) = validate(&path);
        let named = format!("{}: error: ", path.display());
        assert!(stderr.starts_with(&named), "{stderr}");
        assert!(
            stderr.contains(why),
            "{}: expected {why:?} in {stderr}",
            path.display()
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// The same through the library: each refusal carries its kind.
#[test]
fn refusals_carry_their_kind() {
    use vsync_orchestrate::plan::{self, PlanErrorKind};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kind = |p: &Path| plan::load(p).unwrap_err().kind;
    assert_eq!(kind(&root.join(CORPUS)), PlanErrorKind::Unreadable);
    assert_eq!(
        kind(&root.join(CORPUS).join("binary-elf.toml")),
        PlanErrorKind::NotText
    );
    assert_eq!(
        kind(&root.join(CORPUS).join("syntax-nul-byte.toml")),
        PlanErrorKind::Invalid
    );
    assert_eq!(
        kind(&root.join(CORPUS).join("semantic-no-store.toml")),
        PlanErrorKind::Invalid
    );
    if Path::new("/dev/zero").exists() {
        assert_eq!(kind(Path::new("/dev/zero")), PlanErrorKind::TooLarge);
    }
    let e =
        plan::parse_bytes(Path::new("x.toml"), &vec![b' '; plan::MAX_PLAN_BYTES + 1]).unwrap_err();
    assert_eq!(e.kind, PlanErrorKind::TooLarge);
}

/// A plan of nearly a megabyte with a problem in every table: at most
/// `MAX_PROBLEMS` lines and one that counts the rest, in bounded time (finding the
/// n-th table for each would otherwise read the file once per table).
#[test]
fn thousands_of_problems_are_counted_not_listed() {
    use vsync_orchestrate::plan::{MAX_PLAN_BYTES, MAX_PROBLEMS};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("many.toml");
    let mut plan = String::from(
        "env = \"prod\"\n[vault]\ndir = \"/srv/v\"\nprefix = \"a/prod/\"\nsalt = \"s\"\n",
    );
    let table = "[[store]]\ntype = \"file\"\npath = \"/etc/vsync/passphrase\"\nmode = \"0644\"\n";
    let n = (MAX_PLAN_BYTES - plan.len()) / table.len();
    plan.push_str(&table.repeat(n));
    std::fs::write(&path, &plan).unwrap();
    let (_, stderr) = validate(&path);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), MAX_PROBLEMS + 1, "{stderr}");
    assert!(lines[0].contains(":9:1: error: mode 0644"), "{}", lines[0]);
    // Two errors per table (the mode, the same file again) but the first table's one;
    // the warning is "no [[restart]]".
    let more = 2 * n - 1 - MAX_PROBLEMS;
    assert!(
        lines[MAX_PROBLEMS].ends_with(&format!("error: {more} more error(s) and 1 more warning(s) not shown (at most {MAX_PROBLEMS} per plan)")),
        "{}",
        lines[MAX_PROBLEMS]
    );
}

/// Issue 24: what `validate` says is in the plan's words. serde's and Rust's
/// (`expected u32`, `expected a sequence`, `invalid type: …`, `struct VaultSection`)
/// never reach the operator, for any file of the corpus.
#[test]
fn no_rust_type_names_in_any_answer() {
    let rust = Regex::new(
        r"invalid type:|invalid value:|expected (u8|u16|u32|u64|usize|i8|i16|i32|i64|isize|f32|f64|a sequence|a map|a boolean|a string|struct |enum |variant identifier)|floating point|PathBuf|Option<|Vec<",
    )
    .unwrap();
    let mut failures = Vec::new();
    for path in corpus() {
        let (_, stderr) = validate(&path);
        if let Some(m) = rust.find(&stderr) {
            failures.push(format!(
                "{}: {:?} in {stderr:?}",
                path.display(),
                m.as_str()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 24: a value of the wrong type is reported at its KEY (line and column),
/// also inside an inline table and in a `type`-tagged table that is read whole,
/// not at the table's header or at the start of the line.
#[test]
fn type_errors_point_at_the_key() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        // `meta = { ticket = 42 }`: `ticket` is at column 10
        ("wrong-type-meta-value.toml", "12:10", None),
        // `new = { generate = { length = 1e9 } }`: `length` is at column 22
        ("absurd-length-float.toml", "11:22", None),
        // `targets = [{ name = "app", argv = "…" }]`: `argv` is at column 28
        ("wrong-type-argv-string.toml", "19:28", None),
        // `old = { env = [...] }`: `env` is at column 9
        ("literal-secret-env-array.toml", "10:9", None),
        // `batch_size` on line 18 of a [[restart]] that starts on line 14
        ("wrong-type-restart-batch-size.toml", "18:1", Some("ssh")),
        ("wrong-type-hosts-string.toml", "16:1", Some("ssh")),
        // `type = 1` on the [[store]]'s line 14, not at its header
        ("wrong-type-type-number.toml", "14:1", None),
    ];
    let mut failures = Vec::new();
    for (file, place, feature) in cases {
        if feature.is_some_and(|f| !feature_on(f)) {
            continue;
        }
        let path = Path::new(CORPUS).join(file);
        let (_, stderr) = validate(&path);
        let want = format!("{}:{place}: error: ", path.display());
        if !stderr.starts_with(&want) {
            failures.push(format!("{file}: expected {want:?}, got {stderr:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 24: every problem of a plan, not just the first, sorted by place; the
/// exit code stays 10. This file has a semantic problem (`env`), a type error
/// (`[vault]`) and an unknown adapter type (`[[restart]]`), in that order.
#[test]
fn every_problem_is_reported_in_the_order_of_the_file() {
    let path = Path::new(CORPUS).join("several-problems.toml");
    let (_, stderr) = validate(&path);
    let name = path.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    let expect = [
        ("2:1", "env \"Prod\" must match ^[a-z][a-z0-9_-]*$"),
        (
            "8:1",
            "`vault.iterations` must be a whole number, like 3; here it is the string \"many\"",
        ),
        ("15:1", "unknown variant `k8s`"),
    ];
    for (line, (place, what)) in lines.iter().zip(expect) {
        assert!(
            line.starts_with(&format!("{name}:{place}: error: ")),
            "{line}"
        );
        assert!(line.contains(what), "{line}");
    }
    // The JSON answer lists the same three.
    let json = bin()
        .args(["validate", "--output", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(10));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["plans"][0]["problems"].as_array().unwrap().len(),
        3,
        "{v}"
    );
}

/// Issue 24: `type = "k8s"` is the Kubernetes restarter, not `ecs` (which is
/// closer by edit distance): known aliases come before distance.
#[test]
fn an_adapter_nickname_suggests_the_adapter_named_after_it() {
    for file in ["unknown-restart-type-alias.toml", "several-problems.toml"] {
        let (_, stderr) = validate(&Path::new(CORPUS).join(file));
        assert!(
            stderr.contains("did you mean `kubernetes`?"),
            "{file}: {stderr}"
        );
        assert!(!stderr.contains("`ecs`?"), "{file}: {stderr}");
    }
}
