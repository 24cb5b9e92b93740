//! The systemd container `.ci/run` boots with systemd-nspawn, reached over its own
//! sshd: a skip on a developer's machine without it, a failure under CI.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub struct Env {
    pub moto: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
}

/// The services `.ci/run` starts, through the testkit's service-or-skip: a skip
/// (`None`, and the test reported `ignored (<why>)` by the testkit's harness) on a
/// developer machine, a failure under CI.
pub fn env(test: &str) -> Option<Env> {
    let v = vsync_orchestrate_testkit::service::env_or_skip(
        test,
        &[
            "VSYNC_TEST_MOTO_ENDPOINT",
            "VSYNC_TEST_NSPAWN_SSH_PORT",
            "VSYNC_TEST_NSPAWN_SSH_USER",
            "VSYNC_TEST_NSPAWN_SSH_KEY",
            "VSYNC_TEST_NSPAWN_KNOWN_HOSTS",
        ],
    )?;
    Some(Env {
        moto: v[0].clone(),
        port: v[1].parse().expect("VSYNC_TEST_NSPAWN_SSH_PORT"),
        user: v[2].clone(),
        key: v[3].clone().into(),
        known_hosts: v[4].clone().into(),
    })
}

impl Env {
    pub fn ssh_command(&self, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(script);
        c
    }

    /// Runs a shell script in the container; stdin gets `input`.
    pub fn ssh_raw(&self, script: &str, input: &[u8]) -> Output {
        let mut child = self
            .ssh_command(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssh");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("ssh");
        writer.join().unwrap();
        out
    }

    /// Runs a shell script in the container and returns its stdout; panics on failure.
    pub fn ssh(&self, script: &str) -> String {
        let out = self.ssh_raw(script, b"");
        assert!(
            out.status.success(),
            "in the container: {script}\nexit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a file in the container atomically with `mode`.
    pub fn put(&self, path: &str, body: &[u8], mode: &str) {
        let script = format!(
            "set -e; umask 077; mkdir -p \"$(dirname {path})\"; cat >{path}.e2e-tmp; chmod {mode} {path}.e2e-tmp; mv -f {path}.e2e-tmp {path}"
        );
        let out = self.ssh_raw(&script, body);
        assert!(
            out.status.success(),
            "writing {path} in the container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A file's bytes in the container, or None when it does not exist.
    pub fn get(&self, path: &str) -> Option<String> {
        let out = self.ssh(&format!(
            "if [ -e {path} ]; then printf y; cat {path}; else printf n; fi"
        ));
        out.strip_prefix('y').map(str::to_owned)
    }

    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.ssh(&format!("systemctl show -p {prop} --value {unit}"))
            .trim()
            .to_owned()
    }
}
