//! The checks a plan whose sections read must still pass, one named rule each.
//! A rule looks only at the sections it needs, and only when they read, so a
//! type error in `[vault]` does not hide a bad `[[store]]`. Places come from the
//! parser's spans ([`super::spans`]).

use super::model::*;
use super::problem::{
    parse_duration, too_long, Report, MAX_ITERATIONS, MAX_MIN_AGE, MAX_MIN_AGE_SHOWN, MAX_SAMPLES,
    MAX_WAIT, MAX_WAIT_SHOWN,
};
use super::spans::Step::{self, Key, Nth};
use super::structure::Parts;
use std::collections::HashMap;
use vsync_orchestrate_api::{Finding, Severity as AdapterSeverity};

type Rule = fn(&mut Report, &Parts);

/// Every rule, by name, in the order they run (problems are reported by place).
pub(super) const RULES: &[(&str, Rule)] = &[
    ("state-dir-absolute", state_dir_absolute),
    ("env-name", env_name),
    ("vault-location", vault_location),
    ("vault-prefix", vault_prefix),
    ("vault-salt", vault_salt),
    ("vault-timeout", vault_timeout),
    ("vault-iterations", vault_iterations),
    ("vault-audit", vault_audit),
    ("passphrase-old", passphrase_old),
    ("passphrase-new", passphrase_new),
    ("passphrase-meta", passphrase_meta),
    ("stores-present", stores_present),
    ("adapter-tables", adapter_tables),
    ("restarts-present", restarts_present),
    ("verify", verify),
    ("escrow-recipients", escrow_recipients),
    ("notify", notify),
    ("schedule-min-age", schedule_min_age),
];

pub(super) fn run(r: &mut Report, parts: &Parts) {
    for (_, rule) in RULES {
        rule(r, parts);
    }
}

fn at(r: &Report, path: &[Step]) -> (usize, usize) {
    r.doc.at(path)
}

/// A duration that parses, is positive and is at most `MAX_WAIT`.
fn duration(r: &mut Report, path: &[Step], what: &str, v: &Option<String>) {
    let Some(s) = v else { return };
    let msg = match parse_duration(s) {
        Err(e) => format!("{what}: {e}"),
        Ok(d) if d.is_zero() => format!("{what} must be positive"),
        Ok(d) if d > MAX_WAIT => too_long(what, &format!("{s:?}"), MAX_WAIT_SHOWN),
        Ok(_) => return,
    };
    let place = at(r, path);
    r.error(place, msg);
}

fn state_dir_absolute(r: &mut Report, p: &Parts) {
    if let Some(d) = p.state_dir.as_ref().filter(|d| !d.is_absolute()) {
        r.error(
            at(r, &[Key("state_dir")]),
            format!("state_dir {} is relative (and `~` is not expanded): write an absolute path, so `resume` from another directory finds the journal", d.display()),
        );
    }
}

/// vsync's own rule for environment names.
fn env_name(r: &mut Report, p: &Parts) {
    let Some(env) = &p.env else { return };
    let ok = env.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && env
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        r.error(
            at(r, &[Key("env")]),
            format!("env {env:?} must match ^[a-z][a-z0-9_-]*$ (as vsync requires)"),
        );
    }
}

fn vault_location(r: &mut Report, p: &Parts) {
    let Some(v) = &p.vault else { return };
    match (&v.bucket, &v.dir) {
        (Some(_), Some(_)) => r.error(
            at(r, &[Key("vault"), Key("dir")]),
            "set either vault.bucket (S3) or vault.dir (local directory), not both",
        ),
        (None, None) => r.error(
            at(r, &[Key("vault")]),
            "vault needs bucket = \"…\" (S3) or dir = \"…\" (local directory)",
        ),
        _ => {}
    }
    if let Some(d) = v.dir.as_ref().filter(|d| !d.is_absolute()) {
        r.error(
            at(r, &[Key("vault"), Key("dir")]),
            format!("vault.dir {} is relative: write an absolute path, so `resume` from another directory finds the same vault", d.display()),
        );
    }
    if v.endpoint.is_some() && v.bucket.is_none() {
        r.error(
            at(r, &[Key("vault"), Key("endpoint")]),
            "vault.endpoint only applies to S3 vaults (vault.bucket)",
        );
    }
}

fn vault_prefix(r: &mut Report, p: &Parts) {
    let Some(v) = &p.vault else { return };
    if !v.prefix.is_empty() && !v.prefix.ends_with('/') {
        r.error(
            at(r, &[Key("vault"), Key("prefix")]),
            format!(
                "vault.prefix {:?} must end with \"/\" (try \"{}/\")",
                v.prefix, v.prefix
            ),
        );
    }
}

fn vault_salt(r: &mut Report, p: &Parts) {
    let Some(v) = &p.vault else { return };
    let given = [v.salt.is_some(), v.config.is_some(), v.cli_config.is_some()];
    match given.iter().filter(|b| **b).count() {
        0 => r.error(
            at(r, &[Key("vault")]),
            "the vault's salt is needed to re-encrypt: set vault.salt = { env = \"VSYNC_SALT\" }, vault.config = { env = \"VSYNC_CONFIG\" } or vault.cli_config = \"~/.config/vsync/<repo>/env_<env>\"",
        ),
        1 => {}
        _ => {
            let second = ["salt", "config", "cli_config"]
                .into_iter()
                .zip(given)
                .filter(|(_, g)| *g)
                .nth(1)
                .map(|(k, _)| k)
                .unwrap_or("salt");
            r.error(
                at(r, &[Key("vault"), Key(second)]),
                "set only one of vault.salt, vault.config and vault.cli_config",
            )
        }
    }
}

fn vault_timeout(r: &mut Report, p: &Parts) {
    let Some(v) = &p.vault else { return };
    duration(
        r,
        &[Key("vault"), Key("timeout")],
        "vault.timeout",
        &v.timeout,
    );
}

fn vault_iterations(r: &mut Report, p: &Parts) {
    let Some(n) = p.vault.as_ref().and_then(|v| v.iterations) else {
        return;
    };
    let place = at(r, &[Key("vault"), Key("iterations")]);
    if n == 0 {
        r.error(
            place,
            "vault.iterations must be positive (vsync uses 600000)",
        );
    } else if n > MAX_ITERATIONS {
        r.error(
            place,
            format!("vault.iterations {n} is absurd: every key derivation would take minutes (vsync uses 600000; at most {MAX_ITERATIONS})"),
        );
    }
}

/// Audit rows go to `<repo>/<env>/audit.csv`: the repo must be known.
fn vault_audit(r: &mut Report, p: &Parts) {
    let (Some(v), Some(env)) = (&p.vault, &p.env) else {
        return;
    };
    if !v.audit || v.repo.is_some() {
        return;
    }
    let first = v.prefix.split('/').next().unwrap_or("");
    if first.is_empty() {
        r.error(
            at(r, &[Key("vault"), Key("audit")]),
            "audit rows go to <repo>/<env>/audit.csv: set vault.repo, or audit = false",
        );
    } else if v.prefix != format!("{first}/{env}/") {
        r.warn(
            at(r, &[Key("vault"), Key("prefix")]),
            format!(
                "prefix {:?} is not <repo>/<env>/ ({first}/{env}/): upstream push/pull read a different place; audit rows go to {first}/{env}/audit.csv (set vault.repo to change)",
                v.prefix
            ),
        );
    }
}

/// A plan never contains a passphrase: only keywords and references.
fn passphrase_old(r: &mut Report, p: &Parts) {
    let Some(pp) = &p.passphrase else { return };
    let place = at(r, &[Key("passphrase"), Key("old")]);
    match &pp.old {
        OldSource::Keyword(k) if !["store", "prompt", "stdin"].contains(&k.as_str()) => {
            r.error(place, "passphrase.old is not \"store\", \"prompt\" or \"stdin\": a plan never contains a passphrase; use { env = \"VAR\" }, { file = \"path\" } or { command = [...] }")
        }
        OldSource::Command { command } if command.is_empty() => {
            r.error(place, "passphrase.old command is empty")
        }
        _ => {}
    }
}

fn passphrase_new(r: &mut Report, p: &Parts) {
    let Some(pp) = &p.passphrase else { return };
    let place = at(r, &[Key("passphrase"), Key("new")]);
    match &pp.new {
        NewSource::Keyword(k) if !["prompt", "stdin"].contains(&k.as_str()) => r.error(
            place,
            "passphrase.new is not \"prompt\" or \"stdin\": a plan never contains a passphrase; use { generate = { length = 32 } }, { env = \"VAR\" } or { file = \"path\" }",
        ),
        NewSource::Generate { generate } if generate.length < 12 => r.error(
            place,
            format!("a generated passphrase of {} characters is too short: the minimum is 12, use 32", generate.length),
        ),
        NewSource::Generate { generate } if generate.length < 20 => r.warn(
            place,
            format!("{} characters passes rotate, but the vsync CLI refuses keys under 20 characters", generate.length),
        ),
        NewSource::Generate { generate } if generate.length > 256 => {
            r.error(place, "generate.length above 256 is not useful")
        }
        NewSource::Command { command } if command.is_empty() => {
            r.error(place, "passphrase.new command is empty")
        }
        _ => {}
    }
}

/// The note and meta go into the audit row, which has a cap.
fn passphrase_meta(r: &mut Report, p: &Parts) {
    let Some(pp) = &p.passphrase else { return };
    if pp.note.as_ref().is_some_and(|n| n.len() > 1024) {
        r.error(
            at(r, &[Key("passphrase"), Key("note")]),
            "passphrase.note is longer than 1024 characters",
        );
    }
    let mut meta: Vec<(String, String)> = pp
        .meta
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(n) = &pp.note {
        meta.insert(0, ("note".into(), n.clone()));
    }
    if crate::vault::audit::user_meta_len(&meta) > crate::vault::audit::META_CAP {
        r.error(
            at(r, &[Key("passphrase"), Key("meta")]),
            "note and meta together exceed the audit log's 2048-byte meta cap",
        );
    }
}

fn stores_present(r: &mut Report, p: &Parts) {
    if !p.has_stores {
        r.error((1, 1), "no [[store]]: at least one secret store must receive the new passphrase, or apps cannot boot after rotation");
    }
}

fn restarts_present(r: &mut Report, p: &Parts) {
    if !p.has_restarts {
        r.warn((1, 1), "no [[restart]]: apps keep running with the passphrase in memory and pick up the new one only when they next boot");
    }
}

/// Each adapter's own static checks, at the key they name; and no target written
/// by two tables.
fn adapter_tables(r: &mut Report, p: &Parts) {
    // Target → the table that names it first.
    let mut seen: HashMap<String, String> = HashMap::new();
    for (n, s) in &p.stores {
        let cfg = s.config();
        adapter(r, &mut seen, "store", *n, cfg.check(), cfg.targets());
    }
    for (n, rs) in &p.restarts {
        let cfg = rs.config();
        let mut findings = cfg.check();
        if rs.timeout() > MAX_WAIT {
            let given = humantime::format_duration(rs.timeout()).to_string();
            findings.push(Finding::error(
                Some("timeout"),
                too_long("timeout", &given, MAX_WAIT_SHOWN),
            ));
        }
        adapter(r, &mut seen, "restart", *n, findings, cfg.targets());
    }
}

fn adapter(
    r: &mut Report,
    seen: &mut HashMap<String, String>,
    table: &str,
    n: usize,
    findings: Vec<Finding>,
    targets: Vec<String>,
) {
    for f in findings {
        let mut path = vec![Key(table), Nth(n)];
        if let Some(k) = &f.key {
            path.extend(k.split('.').map(Key));
        }
        let place = at(r, &path);
        match f.severity {
            AdapterSeverity::Error => r.error(place, f.message),
            _ => r.warn(place, f.message),
        }
    }
    let me = format!("[[{table}]] #{}", n + 1);
    for t in targets {
        if let Some(first) = seen.get(&t) {
            let msg = format!(
                "{t} is already written by {first}: two tables must not name the same target"
            );
            let place = at(r, &[Key(table), Nth(n)]);
            r.error(place, msg);
        } else {
            seen.insert(t, me.clone());
        }
    }
}

fn verify(r: &mut Report, p: &Parts) {
    let Some(v) = &p.verify else { return };
    duration(
        r,
        &[Key("verify"), Key("timeout")],
        "verify.timeout",
        &v.timeout,
    );
    duration(
        r,
        &[Key("verify"), Key("interval")],
        "verify.interval",
        &v.interval,
    );
    for u in &v.health {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            r.error(
                at(r, &[Key("verify"), Key("health")]),
                format!("health URL {u:?} must start with http:// or https://"),
            );
        }
    }
    let samples = at(r, &[Key("verify"), Key("samples")]);
    match v.samples {
        Some(0) => r.error(samples, "verify.samples must be at least 1"),
        Some(n) if n > MAX_SAMPLES => r.error(
            samples,
            format!("verify.samples {n} is absurd: at most {MAX_SAMPLES}"),
        ),
        _ => {}
    }
}

fn escrow_recipients(r: &mut Report, p: &Parts) {
    let Some(e) = &p.escrow else { return };
    let place = at(r, &[Key("escrow"), Key("age_recipients")]);
    if e.age_recipients.is_empty() {
        r.error(place, "escrow.age_recipients is empty: name at least one age1… public key, or remove [escrow]");
    }
    for k in &e.age_recipients {
        if let Err(why) = super::escrow_key::parse_recipient(k) {
            r.error(place, format!("escrow.age_recipients: {why}"));
        }
    }
}

fn notify(r: &mut Report, p: &Parts) {
    let Some(n) = &p.notify else { return };
    if n.command.is_empty() && n.slack.is_none() && n.webhook.is_none() {
        r.warn(
            at(r, &[Key("notify")]),
            "[notify] names no command, slack or webhook: nothing will be sent",
        );
    }
    if n.on.is_empty() {
        r.warn(
            at(r, &[Key("notify"), Key("on")]),
            "notify.on is empty: nothing will be sent (default: start, success, failure, window_open)",
        );
    }
    if n.timeout
        .is_some_and(|t| t.is_zero() || t > std::time::Duration::from_secs(300))
    {
        r.error(
            at(r, &[Key("notify"), Key("timeout")]),
            "notify.timeout must be between 1ms and 5m: a notification never holds a rotation up for long",
        );
    }
}

fn schedule_min_age(r: &mut Report, p: &Parts) {
    let Some(s) = &p.schedule else { return };
    let place = at(r, &[Key("schedule"), Key("min_age")]);
    match parse_duration(&s.min_age) {
        Err(e) => r.error(place, format!("schedule.min_age: {e}")),
        Ok(d) if d > MAX_MIN_AGE => r.error(
            place,
            too_long(
                "schedule.min_age",
                &format!("{:?}", s.min_age),
                MAX_MIN_AGE_SHOWN,
            ),
        ),
        Ok(_) => {}
    }
}
