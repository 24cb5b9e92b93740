//! The lifetime of the `ssh` master connections, against real sshd processes
//! (`.ci/services/20-sshd.sh`): a master (and its session on the host) dies with the
//! tool, however the tool dies, and a master outlives `idle_timeout` for as long as the
//! tool lives.
//!
//! Processes are found in /proc: a master by its control socket (it lives in the
//! test's own `control_directory`), its session's keep-alive `cat` on the host by the
//! `SSH_CONNECTION` that names the master's TCP connection (the sshd hosts run on
//! this machine).

mod common;

use common::ssh_env;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{Passphrase, RunId, SecretStore};
use vsync_orchestrate_ssh::{SshOptions, Transport, VpsFileConfig, VpsFileStore};

const INITIAL: &str = "masters-initial-Vn28dKq";
/// Set in the re-executed test binary: the control directory its store uses.
const CHILD_CONTROL_DIR: &str = "VSYNC_TEST_SSH_MASTERS_CHILD_CONTROL_DIR";
/// Set in the re-executed test binary: the remote passphrase file.
const CHILD_REMOTE_FILE: &str = "VSYNC_TEST_SSH_MASTERS_CHILD_REMOTE_FILE";
/// Set in the re-executed test binary: the index of the host to use.
const CHILD_HOST: &str = "VSYNC_TEST_SSH_MASTERS_CHILD_HOST";
const READY: &str = "SSH-MASTERS-CHILD-READY";

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The live `ssh` processes whose command line names a path under `dir`: the masters
/// whose control sockets live there.
fn masters(dir: &Path) -> BTreeSet<u32> {
    let dir = dir.to_str().unwrap();
    pids()
        .into_iter()
        .filter(|&pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.first()
                .is_some_and(|a| a == "ssh" || a.ends_with("/ssh"))
                && args.iter().any(|a| a.starts_with(dir))
                && alive(pid)
        })
        .collect()
}

/// The local ports of `pid`'s TCP connections to 127.0.0.1:`port`.
fn source_ports(pid: u32, port: u16) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| {
                let l = std::fs::read_link(e.ok()?.path()).ok()?;
                let l = l.to_str()?;
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect()
        })
        .unwrap_or_default();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    tcp.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, remote, inode) = (f.get(1)?, f.get(2)?, f.get(9)?);
            let rport = u16::from_str_radix(remote.rsplit_once(':')?.1, 16).ok()?;
            if rport != port || !inodes.contains(*inode) {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .collect()
}

/// The live `cat` processes on the host at `port` that run in a session of one of
/// these master connections (named by their source ports).
fn keepalives(port: u16, sources: &BTreeSet<u16>) -> BTreeSet<u32> {
    pids()
        .into_iter()
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "cat")
                && alive(pid)
        })
        .filter(|&pid| {
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            env.split(|&b| b == 0).any(|v| {
                let v = String::from_utf8_lossy(v);
                let Some(conn) = v.strip_prefix("SSH_CONNECTION=") else {
                    return false;
                };
                // "client-addr client-port server-addr server-port"
                let f: Vec<&str> = conn.split_whitespace().collect();
                f.len() == 4
                    && f[3] == port.to_string()
                    && f[1].parse().is_ok_and(|p: u16| sources.contains(&p))
            })
        })
        .collect()
}

/// Polls `f` until it is true or `limit` has passed; how long it took.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn store(env: &common::SshEnv, host: usize, remote_file: String, ssh: SshOptions) -> VpsFileStore {
    let mut cfg = VpsFileConfig::new(Transport::Ssh(vec![env.host(host)]), remote_file);
    cfg.sudo = true;
    cfg.ssh = ssh;
    VpsFileStore::new(cfg).unwrap()
}

/// Not a test on its own: the process `a_killed_tool_leaves_no_master_behind` starts
/// and SIGKILLs. It stages a new value over SSH with the default options, says so,
/// and waits to be killed.
async fn child_process_that_gets_killed_after_staging() {
    let Ok(control_dir) = std::env::var(CHILD_CONTROL_DIR) else {
        return;
    };
    let env = ssh_env("child_process_that_gets_killed_after_staging").expect("ssh env");
    let host: usize = std::env::var(CHILD_HOST).unwrap().parse().unwrap();
    let ssh = SshOptions {
        control_directory: Some(control_dir.into()),
        ..SshOptions::default()
    };
    let s = store(&env, host, std::env::var(CHILD_REMOTE_FILE).unwrap(), ssh);
    s.preflight().await.unwrap();
    s.stage(
        &Passphrase::from("masters-staged-Hq71mZx"),
        &RunId(common::unique("killed")),
    )
    .await
    .unwrap();
    println!("{READY}");
    tokio::time::sleep(Duration::from_secs(600)).await;
    panic!("was not killed");
}

/// The child process, SIGKILLed when the test ends early too.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn a_killed_tool_leaves_no_master_behind() {
    let Some(env) = ssh_env("a_killed_tool_leaves_no_master_behind") else {
        return;
    };
    let host = 1 % env.ports.len();
    let port = env.ports[host];
    let wd = env.workdir("killed");
    std::fs::write(wd.local[host].join("passphrase"), INITIAL).unwrap();
    let control = tempfile::Builder::new()
        .prefix("vsm")
        .tempdir_in("/tmp")
        .unwrap();

    let mut child = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_that_gets_killed_after_staging",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CONTROL_DIR, control.path())
            .env(CHILD_REMOTE_FILE, wd.remote_file("passphrase"))
            .env(CHILD_HOST, host.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = BufReader::new(child.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut ready = false;
    for line in out.lines() {
        let line = line.unwrap();
        if line.contains(READY) {
            ready = true;
            break;
        }
        seen.push(line);
    }
    if !ready {
        let status = child.0.wait().unwrap();
        panic!("the child did not get ready ({status}): {seen:?}");
    }
    assert!(
        wd.local[host].join("passphrase.new").exists(),
        "the child staged"
    );

    let before = masters(control.path());
    assert_eq!(before.len(), 1, "one master for the one host: {before:?}");
    let sources: BTreeSet<u16> = before.iter().flat_map(|&m| source_ports(m, port)).collect();
    assert!(!sources.is_empty(), "the master's connection to {port}");
    // The host may still be between fork and exec of the `cat`.
    let one_cat = || keepalives(port, &sources).len() == 1;
    assert!(
        wait_until(Duration::from_secs(5), one_cat).is_some(),
        "one keep-alive on the host: {:?}",
        keepalives(port, &sources)
    );

    drop(child); // SIGKILL: no destructor, no signal handler runs in the child.
    let killed = Instant::now();

    let idle = SshOptions::default().idle_timeout;
    assert!(
        idle <= Duration::from_secs(10),
        "the default idle_timeout is short: {idle:?}"
    );
    let limit = idle + Duration::from_secs(10);
    let took = wait_until(limit, || {
        masters(control.path()).is_empty() && keepalives(port, &sources).is_empty()
    });
    let left = (masters(control.path()), keepalives(port, &sources));
    eprintln!(
        "after SIGKILL: master and keep-alive gone after {:?} (idle_timeout {idle:?}); left {left:?}",
        took.map(|_| killed.elapsed())
    );
    assert!(
        took.is_some(),
        "{limit:?} after SIGKILL, still running: masters {:?}, keep-alives on the host {:?}",
        left.0,
        left.1
    );
}

async fn a_living_tool_keeps_its_master_past_idle_timeout_and_close_ends_it() {
    let Some(env) = ssh_env("a_living_tool_keeps_its_master_past_idle_timeout_and_close_ends_it")
    else {
        return;
    };
    let host = 2 % env.ports.len();
    let port = env.ports[host];
    let wd = env.workdir("idle");
    std::fs::write(wd.local[host].join("passphrase"), INITIAL).unwrap();
    let control = tempfile::Builder::new()
        .prefix("vsm")
        .tempdir_in("/tmp")
        .unwrap();
    let ssh = SshOptions {
        control_directory: Some(control.path().to_path_buf()),
        idle_timeout: Duration::from_secs(2),
        ..SshOptions::default()
    };
    // Plain commands only (no preflight, so no SFTP channel holds the master).
    let s = store(&env, host, wd.remote_file("passphrase"), ssh);
    let v = s.read_current().await.unwrap().unwrap();
    assert!(v.same_as(&Passphrase::from(INITIAL)));
    let first = masters(control.path());
    assert_eq!(first.len(), 1, "{first:?}");
    let sources: BTreeSet<u16> = first.iter().flat_map(|&m| source_ports(m, port)).collect();
    assert!(
        wait_until(Duration::from_secs(5), || keepalives(port, &sources).len()
            == 1)
        .is_some(),
        "the keep-alive runs on the host: {:?}",
        keepalives(port, &sources)
    );

    // Longer than idle_timeout between two commands, as a rolling restart may wait.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        masters(control.path()),
        first,
        "the master stayed up while idle"
    );
    let v = s.read_current().await.unwrap().unwrap();
    assert!(v.same_as(&Passphrase::from(INITIAL)));
    assert_eq!(
        masters(control.path()),
        first,
        "the same master ran the second command (no reconnect)"
    );

    // close() ends the master and the remote session at once, not idle_timeout later.
    let t0 = Instant::now();
    s.close().await;
    let took = wait_until(Duration::from_millis(1500), || {
        masters(control.path()).is_empty() && keepalives(port, &sources).is_empty()
    });
    eprintln!("close: master and keep-alive gone after {took:?}");
    assert!(
        took.is_some(),
        "{:?} after close: masters {:?}, keep-alives {:?}",
        t0.elapsed(),
        masters(control.path()),
        keepalives(port, &sources)
    );
}

async fn a_master_that_went_away_is_replaced_for_the_next_command() {
    let Some(env) = ssh_env("a_master_that_went_away_is_replaced_for_the_next_command") else {
        return;
    };
    let host = 3 % env.ports.len();
    let wd = env.workdir("gone");
    std::fs::write(wd.local[host].join("passphrase"), INITIAL).unwrap();
    let control = tempfile::Builder::new()
        .prefix("vsm")
        .tempdir_in("/tmp")
        .unwrap();
    let ssh = SshOptions {
        control_directory: Some(control.path().to_path_buf()),
        ..SshOptions::default()
    };
    let s = store(&env, host, wd.remote_file("passphrase"), ssh);
    assert!(s
        .read_current()
        .await
        .unwrap()
        .unwrap()
        .same_as(&Passphrase::from(INITIAL)));
    let first = masters(control.path());
    assert_eq!(first.len(), 1, "{first:?}");
    // The master dies under the tool (OOM killer, an operator's pkill).
    for &pid in &first {
        // SAFETY: kill(2) on a pid of ours; no memory is involved.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert!(
        wait_until(Duration::from_secs(5), || masters(control.path())
            .is_empty())
        .is_some()
    );
    assert!(s
        .read_current()
        .await
        .unwrap()
        .unwrap()
        .same_as(&Passphrase::from(INITIAL)));
    let second = masters(control.path());
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(second.is_disjoint(&first));
    s.close().await;
    assert!(
        wait_until(Duration::from_secs(2), || masters(control.path())
            .is_empty())
        .is_some()
    );
}

vsync_orchestrate_testkit::main! {
    tests: [
        child_process_that_gets_killed_after_staging,
        #[sync] a_killed_tool_leaves_no_master_behind,
        a_living_tool_keeps_its_master_past_idle_timeout_and_close_ends_it,
        a_master_that_went_away_is_replaced_for_the_next_command,
    ],
}
