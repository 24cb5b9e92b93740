//! Service-or-skip for tests that need a real service (moto, sshd, systemd).
//!
//! Stable Rust has no way for a `#[test]` to mark itself ignored at run time: one
//! that returns early is reported as `ok`. So:
//!
//! * in a `harness = false` target run by [`crate::harness`] (the suite files), a
//!   skip makes the test `ignored (<why>)`, counted as ignored in the summary;
//! * elsewhere (an ordinary `#[test]`), a skip writes `SKIPPED <test>: <why>` straight
//!   to stderr, past libtest's capture, so it shows beside the `ok`;
//! * under `CI=true` a missing service is a failure, never a skip: CI must start
//!   every service its tests need.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Whether this is a CI run (`CI=true`), where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (returns `None`) or, in CI, panics, naming the test and the reason. Under
/// [`crate::harness`] the test is then reported ignored with `why` as the reason.
pub fn skip<T>(test: &str, why: &str) -> Option<T> {
    if in_ci() {
        panic!("{test}: CI=true but {why} (.ci/run must start every service the tests need)");
    }
    if !Watch::record(why) {
        // Straight to the stream: `eprintln!` is captured by libtest for a test
        // that passes, and a skip must be seen.
        let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
    }
    None
}

/// The services the tests need: the common prefix of the variables that describe
/// one (or, for a command-line tool found on `PATH`, the tool's name), and how to
/// start or install it, for the reason of a skip. A slice, so a line can be added
/// without counting.
const SERVICES: &[(&str, &str)] = &[
    ("VSYNC_TEST_MOTO_", "start moto: .ci/services/10-moto.sh"),
    (
        "VSYNC_TEST_SSH_",
        "start the sshd hosts: .ci/services/20-sshd.sh",
    ),
    (
        "VSYNC_TEST_NSPAWN_",
        "boot the systemd container: .ci/services/30-nspawn.sh",
    ),
    (
        "VSYNC_TEST_KUBECTL",
        "install kubectl: .ci/services/05-tools.sh",
    ),
    // `age` and `age-keygen`, both in Debian's `age` package.
    (
        "age",
        "install age (apt-get install age): .ci/services/05-tools.sh",
    ),
    (
        "VSYNC_TEST_AWS_CLI",
        "install the aws CLI: .ci/services/42-aws-cli.sh",
    ),
    (
        "VSYNC_TEST_GCLOUD",
        "find gcloud: .ci/services/40-gcp-clients.sh",
    ),
    (
        "VSYNC_TEST_GCP_PYTHON",
        "install Google's Python clients: .ci/services/40-gcp-clients.sh",
    ),
    (
        "VSYNC_TEST_VERCEL_",
        "install Vercel's SDK and CLI: .ci/services/41-vercel-clients.sh",
    ),
    ("zsh", "install zsh: .ci/services/05-tools.sh"),
    ("fish", "install fish: .ci/services/05-tools.sh"),
    ("groff", "install groff-base: .ci/services/05-tools.sh"),
    ("man", "install man-db: .ci/services/05-tools.sh"),
    ("systemd-analyze", "install systemd"),
];

/// Why a test that reads `vars` skips when `missing` are unset:
/// `VSYNC_TEST_MOTO_ENDPOINT not set; start moto: .ci/services/10-moto.sh`. A
/// service none of whose several variables is set is named by its prefix
/// (`VSYNC_TEST_SSH_*`).
fn missing_reason(vars: &[&str], missing: &[&str]) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut how: Vec<&str> = Vec::new();
    for var in missing {
        let Some((prefix, start)) = SERVICES.iter().find(|(p, _)| var.starts_with(p)) else {
            names.push((*var).to_owned());
            continue;
        };
        let asked = vars.iter().filter(|v| v.starts_with(prefix)).count();
        let unset = missing.iter().filter(|v| v.starts_with(prefix)).count();
        let name = if asked > 1 && unset == asked {
            format!("{prefix}*")
        } else {
            (*var).to_owned()
        };
        if !names.contains(&name) {
            names.push(name);
        }
        if !how.contains(start) {
            how.push(start);
        }
    }
    let mut why = format!("{} not set", names.join(", "));
    for h in how {
        why.push_str("; ");
        why.push_str(h);
    }
    why
}

/// The tests [`crate::harness`] is running, by name (the name of the thread each
/// runs on), with the first reason each skipped for.
static WATCHED: Mutex<BTreeMap<String, Option<String>>> = Mutex::new(BTreeMap::new());

fn watched() -> MutexGuard<'static, BTreeMap<String, Option<String>>> {
    WATCHED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A test the harness runs: a skip on a thread of its name is recorded, not printed.
pub(crate) struct Watch(String);

impl Watch {
    pub(crate) fn new(test: &str) -> Watch {
        watched().insert(test.to_owned(), None);
        Watch(test.to_owned())
    }

    /// Why the test skipped, if it did.
    pub(crate) fn finish(self) -> Option<String> {
        watched().remove(&self.0).flatten()
    }

    /// Records `why` for the watched test running on this thread; false when none is.
    fn record(why: &str) -> bool {
        let current = std::thread::current();
        let Some(name) = current.name() else {
            return false;
        };
        match watched().get_mut(name) {
            Some(slot) => {
                slot.get_or_insert_with(|| why.to_owned());
                true
            }
            None => false,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        watched().remove(&self.0);
    }
}

/// The values of `vars` when all are set and non-empty; otherwise a skip (or, in
/// CI, a failure) naming the missing ones.
pub fn env_or_skip(test: &str, vars: &[&str]) -> Option<Vec<String>> {
    let got: Vec<Option<String>> = vars
        .iter()
        .map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .collect();
    if got.iter().all(Option::is_some) {
        return Some(
            got.into_iter()
                .flatten()
                .map(|s| s.trim().to_owned())
                .collect(),
        );
    }
    let missing: Vec<&str> = vars
        .iter()
        .zip(&got)
        .filter(|(_, g)| g.is_none())
        .map(|(v, _)| *v)
        .collect();
    skip(test, &missing_reason(vars, &missing))
}

/// `Some(())` when every one of `tools` runs (`<tool> --version` starts); otherwise
/// a skip (or, in CI, a failure) naming the missing ones and how to install them.
pub fn tools_or_skip(test: &str, tools: &[&str]) -> Option<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|t| {
            std::process::Command::new(t)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_err()
        })
        .copied()
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    skip(test, &tool_reason(&missing))
}

/// Why a test skips when the `missing` tools are not on `PATH`:
/// `age, age-keygen not found on PATH; install age (…): .ci/services/05-tools.sh`.
fn tool_reason(missing: &[&str]) -> String {
    let mut why = format!("{} not found on PATH", missing.join(", "));
    let mut how: Vec<&str> = Vec::new();
    for tool in missing {
        if let Some((_, start)) = SERVICES.iter().find(|(p, _)| tool.starts_with(p)) {
            if !how.contains(start) {
                how.push(start);
            }
        }
    }
    for h in how {
        why.push_str("; ");
        why.push_str(h);
    }
    why
}

/// The current test's name as the harness sets it on the thread (`a::b::test`).
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_variables_are_returned() {
        std::env::set_var("VSYNC_TESTKIT_PRESENT", " value ");
        assert_eq!(
            env_or_skip("t", &["VSYNC_TESTKIT_PRESENT"]),
            Some(vec!["value".to_owned()])
        );
    }

    #[test]
    fn the_reason_names_the_variables_and_how_to_start_their_services() {
        let moto = "VSYNC_TEST_MOTO_ENDPOINT";
        assert_eq!(
            missing_reason(&[moto], &[moto]),
            "VSYNC_TEST_MOTO_ENDPOINT not set; start moto: .ci/services/10-moto.sh"
        );
        let ssh = [
            "VSYNC_TEST_SSH_PORTS",
            "VSYNC_TEST_SSH_USER",
            "VSYNC_TEST_SSH_KEY",
        ];
        let nspawn = [
            moto,
            "VSYNC_TEST_NSPAWN_SSH_PORT",
            "VSYNC_TEST_NSPAWN_SSH_KEY",
        ];
        assert_eq!(
            missing_reason(&ssh, &ssh),
            "VSYNC_TEST_SSH_* not set; start the sshd hosts: .ci/services/20-sshd.sh"
        );
        assert_eq!(
            missing_reason(&ssh, &ssh[1..2]),
            "VSYNC_TEST_SSH_USER not set; start the sshd hosts: .ci/services/20-sshd.sh"
        );
        assert_eq!(
            missing_reason(&nspawn, &nspawn),
            "VSYNC_TEST_MOTO_ENDPOINT, VSYNC_TEST_NSPAWN_* not set; start moto: \
             .ci/services/10-moto.sh; boot the systemd container: .ci/services/30-nspawn.sh"
        );
        assert_eq!(missing_reason(&["A", "B"], &["B"]), "B not set");
    }

    #[test]
    fn a_missing_tool_is_named_with_how_to_install_it() {
        assert_eq!(
            tool_reason(&["age", "age-keygen"]),
            "age, age-keygen not found on PATH; install age (apt-get install age): \
             .ci/services/05-tools.sh"
        );
        assert_eq!(
            tool_reason(&["no-such-tool"]),
            "no-such-tool not found on PATH"
        );
    }

    #[test]
    fn missing_tools_skip_outside_ci_and_fail_in_ci_and_present_ones_pass() {
        // `true` ignores its arguments and is on every PATH this runs on.
        assert_eq!(tools_or_skip("t", &["true"]), Some(()));
        let r = std::panic::catch_unwind(|| tools_or_skip("t", &["vsync-testkit-no-such-tool"]));
        if in_ci() {
            let msg = r.unwrap_err();
            let msg = msg.downcast_ref::<String>().unwrap();
            assert!(
                msg.contains("vsync-testkit-no-such-tool not found"),
                "{msg}"
            );
        } else {
            assert_eq!(r.unwrap(), None);
        }
    }

    #[test]
    fn missing_variables_skip_outside_ci_and_fail_in_ci() {
        let r = std::panic::catch_unwind(|| env_or_skip("t", &["VSYNC_TESTKIT_SURELY_UNSET"]));
        if in_ci() {
            let msg = r.unwrap_err();
            let msg = msg.downcast_ref::<String>().unwrap();
            assert!(msg.contains("VSYNC_TESTKIT_SURELY_UNSET"), "{msg}");
        } else {
            assert_eq!(r.unwrap(), None);
        }
    }
}
