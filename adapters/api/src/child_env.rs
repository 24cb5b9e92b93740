//! The environment every child process starts with.
//!
//! A plan may take a passphrase from an environment variable (`{ env = "X" }`).
//! Children inherit the environment by default, and anyone who can read
//! `/proc/<pid>/environ` (or a restart script that logs its environment) would then
//! see the passphrase. The binary removes those variables from its own environment
//! before any thread starts; this registry is the second line: every place that
//! spawns a process (restarters, notify hooks, passphrase helpers, adapters) calls
//! [`scrub`] or [`scrub_tokio`], so library users who never went through the binary
//! are covered too.

use std::sync::{Mutex, OnceLock};

fn names() -> &'static Mutex<Vec<String>> {
    static NAMES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(vec!["VSYNC_PASSPHRASE".to_owned()]))
}

/// Marks `name` as holding a secret: no child process will inherit it.
pub fn register(name: &str) {
    let mut n = names().lock().unwrap_or_else(|e| e.into_inner());
    if !n.iter().any(|x| x == name) {
        n.push(name.to_owned());
    }
}

/// Every variable no child may inherit.
pub fn secret_names() -> Vec<String> {
    names().lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Removes every registered variable from a command's environment.
pub fn scrub(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for n in secret_names() {
        cmd.env_remove(n);
    }
    cmd
}

/// [`scrub`] for tokio's `Command`.
pub fn scrub_tokio(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    for n in secret_names() {
        cmd.env_remove(n);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_names_are_removed_from_children() {
        register("VSYNC_TEST_CHILD_ENV_SECRET");
        let mut cmd = std::process::Command::new("env");
        cmd.env("VSYNC_TEST_CHILD_ENV_SECRET", "x")
            .env("OTHER", "y");
        scrub(&mut cmd);
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(removed.contains(&"VSYNC_TEST_CHILD_ENV_SECRET".to_owned()));
        assert!(removed.contains(&"VSYNC_PASSPHRASE".to_owned()));
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("VSYNC_TEST_CHILD_ENV_SECRET"), "{text}");
        assert!(text.contains("OTHER=y"));
    }
}
