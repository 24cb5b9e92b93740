//! Service-or-skip for tests that need a real service (moto, sshd, systemd).
//!
//! Stable Rust has no way for a test to mark itself ignored at run time: a test
//! that returns early is reported as `ok`. So a skip here is made visible instead: a
//! `SKIPPED <test>: <why>` line on stderr (shown with `--nocapture`, and collected
//! by `.ci/run`'s log), and under `CI=true` a missing service is a failure, never a
//! silent pass: CI must start every service its tests need.

/// Whether this is a CI run (`CI=true`), where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (returns `None`) or, in CI, panics, naming the test and the reason.
pub fn skip<T>(test: &str, why: &str) -> Option<T> {
    if in_ci() {
        panic!("{test}: CI=true but {why}: .ci/run must start the service");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
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
    skip(test, &format!("{} unset", missing.join(", ")))
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
