//! Shared helpers: the real sshd / systemd-nspawn services started by `.ci/run`
//! (`.ci/services/20-sshd.sh`, `30-nspawn.sh`) are described by environment variables.
//! Without them a test is skipped on a developer machine and fails in CI (`CI=true`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use vsync_orchestrate_ssh::HostSpec;

fn need(test: &str, vars: &[&str]) -> Option<Vec<String>> {
    vsync_orchestrate_testkit::service::env_or_skip(test, vars)
}

/// A name unique to this process and call: the testkit's.
pub use vsync_orchestrate_testkit::unique;

pub struct SshEnv {
    pub ports: Vec<u16>,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub remote_root: PathBuf,
    pub host_roots: Vec<PathBuf>,
}

pub fn ssh_env(test: &str) -> Option<SshEnv> {
    let v = need(
        test,
        &[
            "VSYNC_TEST_SSH_PORTS",
            "VSYNC_TEST_SSH_USER",
            "VSYNC_TEST_SSH_KEY",
            "VSYNC_TEST_SSH_KNOWN_HOSTS",
            "VSYNC_TEST_SSH_REMOTE_ROOT",
            "VSYNC_TEST_SSH_HOST_ROOTS",
        ],
    )?;
    let env = SshEnv {
        ports: v[0]
            .split(',')
            .map(|p| p.trim().parse().expect("VSYNC_TEST_SSH_PORTS"))
            .collect(),
        user: v[1].clone(),
        key: v[2].clone().into(),
        known_hosts: v[3].clone().into(),
        remote_root: v[4].clone().into(),
        host_roots: v[5].split(',').map(PathBuf::from).collect(),
    };
    assert_eq!(
        env.ports.len(),
        env.host_roots.len(),
        "one host root per port"
    );
    Some(env)
}

impl SshEnv {
    pub fn host(&self, i: usize) -> HostSpec {
        HostSpec {
            host: "127.0.0.1".into(),
            port: Some(self.ports[i]),
            user: Some(self.user.clone()),
            identity_file: Some(self.key.clone()),
            known_hosts_file: Some(self.known_hosts.clone()),
        }
    }

    pub fn hosts(&self) -> Vec<HostSpec> {
        (0..self.ports.len()).map(|i| self.host(i)).collect()
    }

    /// A fresh directory per test: the same remote path on every host, and where
    /// each host's copy really is on this machine.
    pub fn workdir(&self, name: &str) -> WorkDir {
        let n = unique(name);
        let local: Vec<PathBuf> = self.host_roots.iter().map(|r| r.join(&n)).collect();
        for d in &local {
            std::fs::create_dir_all(d).unwrap();
        }
        WorkDir {
            remote: self.remote_root.join(&n).to_str().unwrap().to_string(),
            local,
        }
    }
}

pub struct WorkDir {
    /// The directory as seen over SSH.
    pub remote: String,
    /// The directory on this machine, per host.
    pub local: Vec<PathBuf>,
}

impl WorkDir {
    pub fn remote_file(&self, name: &str) -> String {
        format!("{}/{name}", self.remote)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        for d in &self.local {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

pub fn gid_of(group: &str) -> u32 {
    let out = Command::new("getent")
        .args(["group", group])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    line.split(':').nth(2).unwrap().trim().parse().unwrap()
}

/// A TCP port on 127.0.0.1 that nothing listens on.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub struct NspawnEnv {
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
}

pub fn nspawn_env(test: &str) -> Option<NspawnEnv> {
    let v = need(
        test,
        &[
            "VSYNC_TEST_NSPAWN_SSH_PORT",
            "VSYNC_TEST_NSPAWN_SSH_USER",
            "VSYNC_TEST_NSPAWN_SSH_KEY",
            "VSYNC_TEST_NSPAWN_KNOWN_HOSTS",
        ],
    )?;
    Some(NspawnEnv {
        port: v[0].parse().expect("VSYNC_TEST_NSPAWN_SSH_PORT"),
        user: v[1].clone(),
        key: v[2].clone().into(),
        known_hosts: v[3].clone().into(),
    })
}

impl NspawnEnv {
    pub fn host(&self) -> HostSpec {
        HostSpec {
            host: "127.0.0.1".into(),
            port: Some(self.port),
            user: Some(self.user.clone()),
            identity_file: Some(self.key.clone()),
            known_hosts_file: Some(self.known_hosts.clone()),
        }
    }

    /// Runs a command in the container with a plain `ssh` (independent of the crate).
    pub fn ssh(&self, command: &str) -> String {
        let out = Command::new("ssh")
            .arg("-i")
            .arg(&self.key)
            .args([
                "-p",
                &self.port.to_string(),
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(command)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.ssh(&format!("systemctl show -p {prop} --value {unit}"))
            .trim()
            .to_string()
    }
}
