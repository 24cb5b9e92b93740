//! The vps_file store against real sshd processes (`.ci/services/20-sshd.sh`): each
//! port is a separate "host" with its own view of the remote directory.

mod common;

use common::{dead_port, gid_of, ssh_env, uid_of};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use vsync_orchestrate_api::{async_trait, ErrorKind, Passphrase, RunId, SecretStore};
use vsync_orchestrate_ssh::{Transport, VpsFileConfig, VpsFileStore};
use vsync_orchestrate_testkit::store::{SeededStore, StoreFixture};

const INITIAL: &str = "initial-value-Rk29sLq0";

/// Two real hosts, through sudo: the suite's checks see one store over both.
struct SshHosts(common::SshEnv);
struct SeededHosts {
    hosts: Vec<vsync_orchestrate_ssh::HostSpec>,
    wd: common::WorkDir,
}

#[async_trait]
impl StoreFixture for SshHosts {
    async fn seed(&self, initial: &Passphrase) -> Box<dyn SeededStore> {
        let wd = self.0.workdir(&common::unique("suite"));
        for dir in wd.local.iter().take(2) {
            std::fs::write(dir.join("passphrase"), format!("{}\n", initial.expose())).unwrap();
        }
        Box::new(SeededHosts {
            hosts: vec![self.0.host(0), self.0.host(1)],
            wd,
        })
    }
}

#[async_trait]
impl SeededStore for SeededHosts {
    async fn open(&self) -> Arc<dyn SecretStore> {
        let mut cfg = VpsFileConfig::new(
            Transport::Ssh(self.hosts.clone()),
            self.wd.remote_file("passphrase"),
        );
        cfg.sudo = true;
        Arc::new(VpsFileStore::new(cfg).unwrap())
    }
}

/// Stage and activate a new value from `INITIAL`, checking what the store reads.
async fn rotate(store: &VpsFileStore, tag: &str) -> Passphrase {
    assert!(store
        .read_current()
        .await
        .unwrap()
        .unwrap()
        .same_as(&Passphrase::from(INITIAL)));
    let new = Passphrase::from(format!("rotated-{tag}-Kd72Lq0Zp").as_str());
    let staged = store
        .stage(&new, &RunId(common::unique(tag)))
        .await
        .unwrap();
    store.activate(&staged).await.unwrap();
    assert!(store.read_current().await.unwrap().unwrap().same_as(&new));
    // After T1 the engine tidies: the kept link becomes `.prev`.
    store.tidy(&staged).await.unwrap();
    new
}

async fn ssh_hosts() -> Option<SshHosts> {
    ssh_env(&vsync_orchestrate_testkit::service::current_test()).map(SshHosts)
}

vsync_orchestrate_testkit::store_suite!(ssh_hosts());

async fn activation_over_ssh_with_sudo_keeps_prev_and_leaves_no_temp_files() {
    let Some(env) = ssh_env("activation_over_ssh_with_sudo_keeps_prev_and_leaves_no_temp_files")
    else {
        return;
    };
    let wd = env.workdir("conformance");
    // A trailing newline, as an editor leaves it: read back without it.
    std::fs::write(wd.local[0].join("passphrase"), format!("{INITIAL}\n")).unwrap();
    let mut cfg = VpsFileConfig::new(
        Transport::Ssh(vec![env.host(0)]),
        wd.remote_file("passphrase"),
    );
    cfg.sudo = true;
    let store = VpsFileStore::new(cfg).unwrap();
    let pre = store.preflight().await.unwrap();
    assert!(
        pre.detail.contains("one SFTP rename per host"),
        "sftp-server through sudo: {} {:?}",
        pre.detail,
        pre.warnings
    );
    let last = Passphrase::from("activated-over-ssh-Pq81Lz");
    let staged = store
        .stage(&last, &RunId(common::unique("ssh")))
        .await
        .unwrap();
    store.activate(&staged).await.unwrap();
    store.tidy(&staged).await.unwrap();

    let dir = &wd.local[0];
    assert_eq!(
        std::fs::read_to_string(dir.join("passphrase")).unwrap(),
        last.expose(),
        "no trailing newline"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("passphrase.prev")).unwrap(),
        format!("{INITIAL}\n")
    );
    assert!(!dir.join("passphrase.new").exists());
    let meta = std::fs::metadata(dir.join("passphrase")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), 0, "written through sudo: owned by root");
    // No temp files left behind.
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    store.close().await;
}

async fn fans_out_to_every_host_with_owner_group_and_mode() {
    let Some(env) = ssh_env("fans_out_to_every_host_with_owner_group_and_mode") else {
        return;
    };
    assert!(env.ports.len() >= 5, "the tests want at least 5 sshd hosts");
    let wd = env.workdir("fanout");
    for d in &wd.local {
        std::fs::write(d.join("passphrase"), INITIAL).unwrap();
    }
    let mut cfg = VpsFileConfig::new(Transport::Ssh(env.hosts()), wd.remote_file("passphrase"));
    cfg.sudo = true;
    cfg.owner = Some(env.user.clone());
    cfg.group = Some("nogroup".into());
    cfg.mode = Some(0o640);
    let store = VpsFileStore::new(cfg).unwrap();
    let pre = store.preflight().await.unwrap();
    assert!(
        pre.detail
            .contains(&format!("on {} hosts", env.ports.len())),
        "{}",
        pre.detail
    );
    assert!(pre.warnings.is_empty(), "{:?}", pre.warnings);

    let last = rotate(&store, "fan").await;

    let (uid, gid) = (uid_of(&env.user), gid_of("nogroup"));
    for d in &wd.local {
        let f = d.join("passphrase");
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            last.expose(),
            "{}",
            f.display()
        );
        let meta = std::fs::metadata(&f).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640, "{}", f.display());
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", f.display());
        assert_eq!(
            std::fs::read_to_string(d.join("passphrase.prev")).unwrap(),
            INITIAL
        );
        assert!(!d.join("passphrase.new").exists());
    }

    // The per-host results are in the journal record, without the value or its hash.
    let next = Passphrase::from("fan-out-third-Zm81qPx");
    let staged = store
        .stage(&next, &RunId(common::unique("third")))
        .await
        .unwrap();
    let hosts = staged.extra["hosts"].as_object().unwrap();
    assert_eq!(hosts.len(), env.ports.len());
    assert!(hosts.values().all(|h| h["result"] == "written"));
    let json = serde_json::to_string(&staged).unwrap();
    assert!(!json.contains(next.expose()) && !json.contains(&next.sha256_hex()));
    store.discard(&staged).await.unwrap();
    store.close().await;
}

async fn activation_failing_on_some_hosts_names_them() {
    let Some(env) = ssh_env("activation_failing_on_some_hosts_names_them") else {
        return;
    };
    let wd = env.workdir("partial");
    for d in &wd.local {
        std::fs::write(d.join("passphrase"), INITIAL).unwrap();
    }
    let mut cfg = VpsFileConfig::new(Transport::Ssh(env.hosts()), wd.remote_file("passphrase"));
    cfg.sudo = true;
    let store = VpsFileStore::new(cfg).unwrap();
    store.preflight().await.unwrap();
    let new = Passphrase::from("partial-new-value-8hWq");
    let staged = store
        .stage(&new, &RunId(common::unique("partial")))
        .await
        .unwrap();
    // Someone removes the staged file on two hosts.
    for i in [1, 3] {
        std::fs::remove_file(wd.local[i].join("passphrase.new")).unwrap();
    }
    let err = store.activate(&staged).await.unwrap_err();
    let msg = err.chain();
    eprintln!("activate error: {msg}");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{msg}");
    let labels: Vec<String> = env.hosts().iter().map(|h| h.label()).collect();
    assert!(msg.contains(&format!("2 of {}", labels.len())), "{msg}");
    for (i, l) in labels.iter().enumerate() {
        assert!(msg.contains(l.as_str()), "{msg} should name {l}");
        let now = std::fs::read_to_string(wd.local[i].join("passphrase")).unwrap();
        let expect = if i == 1 || i == 3 {
            INITIAL
        } else {
            new.expose()
        };
        assert_eq!(now, expect, "host {l}");
    }
    assert!(!msg.contains(new.expose()));

    // The hosts now disagree: reads say which hosts hold which, never the values.
    let err = store.read_current().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.message().contains(&labels[1]) && !err.message().contains(INITIAL),
        "{}",
        err.message()
    );
    store.close().await;
}

async fn a_host_that_is_down_fails_preflight_by_name() {
    let Some(env) = ssh_env("a_host_that_is_down_fails_preflight_by_name") else {
        return;
    };
    let wd = env.workdir("down");
    let mut down = env.host(0);
    down.port = Some(dead_port());
    let label = down.label();
    let cfg = VpsFileConfig::new(
        Transport::Ssh(vec![env.host(0), down]),
        wd.remote_file("passphrase"),
    );
    let store = VpsFileStore::new(cfg).unwrap();
    let err = store.preflight().await.unwrap_err();
    let msg = err.chain();
    eprintln!("preflight error: {msg}");
    assert!(msg.contains(&label), "{msg}");
    assert!(msg.contains("1 of 2"), "{msg}");
    assert!(
        !msg.contains(&env.host(0).label()),
        "only the dead host is named: {msg}"
    );
    assert_eq!(err.kind(), ErrorKind::Temporary, "{msg}");
    store.close().await;
}

async fn unknown_host_keys_are_refused() {
    let Some(env) = ssh_env("unknown_host_keys_are_refused") else {
        return;
    };
    let wd = env.workdir("hostkey");
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut h = env.host(0);
    h.known_hosts_file = Some(empty.path().to_path_buf());
    let store = VpsFileStore::new(VpsFileConfig::new(
        Transport::Ssh(vec![h]),
        wd.remote_file("p"),
    ))
    .unwrap();
    let err = store.preflight().await.unwrap_err();
    eprintln!("preflight error: {}", err.chain());
    assert_eq!(err.kind(), ErrorKind::Permission, "{}", err.chain());
    assert!(err.chain().contains("host key"), "{}", err.chain());
    assert_eq!(
        std::fs::metadata(empty.path()).unwrap().len(),
        0,
        "strict: nothing added to known_hosts"
    );
}

async fn without_sudo_the_login_user_needs_the_directory() {
    let Some(env) = ssh_env("without_sudo_the_login_user_needs_the_directory") else {
        return;
    };
    let wd = env.workdir("nosudo");
    // Root-owned directory: preflight says the user cannot write there.
    let store = VpsFileStore::new(VpsFileConfig::new(
        Transport::Ssh(vec![env.host(0)]),
        wd.remote_file("passphrase"),
    ))
    .unwrap();
    let err = store.preflight().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permission, "{}", err.chain());
    assert!(err.chain().contains("not writable"), "{}", err.chain());
    store.close().await;

    // A directory the user owns: the whole contract works without sudo.
    let uid = uid_of(&env.user);
    std::os::unix::fs::chown(&wd.local[0], Some(uid), None).unwrap();
    std::fs::write(wd.local[0].join("passphrase"), INITIAL).unwrap();
    std::os::unix::fs::chown(wd.local[0].join("passphrase"), Some(uid), None).unwrap();
    let store = VpsFileStore::new(VpsFileConfig::new(
        Transport::Ssh(vec![env.host(0)]),
        wd.remote_file("passphrase"),
    ))
    .unwrap();
    rotate(&store, "nosudo").await;
    let meta = std::fs::metadata(wd.local[0].join("passphrase")).unwrap();
    assert_eq!(meta.uid(), uid);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    store.close().await;
}

/// `plan` must fail where `run` would: a directory where stage writes `.new` is
/// refused in preflight, by host.
async fn a_directory_in_place_of_the_staged_file_fails_preflight() {
    let Some(env) = ssh_env("a_directory_in_place_of_the_staged_file_fails_preflight") else {
        return;
    };
    let wd = env.workdir("newdir");
    for dir in wd.local.iter().take(2) {
        std::fs::write(dir.join("passphrase"), format!("{INITIAL}\n")).unwrap();
    }
    std::fs::create_dir(wd.local[1].join("passphrase.new")).unwrap();
    let mut cfg = VpsFileConfig::new(
        Transport::Ssh(vec![env.host(0), env.host(1)]),
        wd.remote_file("passphrase"),
    );
    cfg.sudo = true;
    let store = VpsFileStore::new(cfg).unwrap();
    let err = store.preflight().await.unwrap_err();
    let msg = err.chain();
    assert!(msg.contains("passphrase.new is a directory"), "{msg}");
    assert!(msg.contains(&env.host(1).label()), "{msg}");
    assert!(!msg.contains(INITIAL), "{msg}");
    store.close().await;
}

/// The manual step printed with an open window (exit 14) is the command, per host,
/// not "use the console": run on a host, it makes the staged file current, and
/// running it again changes nothing.
async fn the_activation_hint_is_a_command_that_activates() {
    let Some(env) = ssh_env("the_activation_hint_is_a_command_that_activates") else {
        return;
    };
    let wd = env.workdir("hint");
    for dir in wd.local.iter().take(2) {
        std::fs::write(dir.join("passphrase"), format!("{INITIAL}\n")).unwrap();
    }
    let mut cfg = VpsFileConfig::new(
        Transport::Ssh(vec![env.host(0), env.host(1)]),
        wd.remote_file("passphrase"),
    );
    cfg.sudo = true;
    let store = VpsFileStore::new(cfg).unwrap();
    store.preflight().await.unwrap();
    let new = Passphrase::from("hinted-value-Pq83Lm2");
    let staged = store
        .stage(&new, &RunId(common::unique("hint")))
        .await
        .unwrap();
    let hint = store
        .activate_hint(&staged)
        .expect("an ssh store has a hint");
    assert!(!hint.contains("hinted-value"), "{hint}");
    let lines: Vec<&str> = hint.split("; ").collect();
    assert_eq!(lines.len(), 2, "{hint}");
    for (i, line) in lines.iter().enumerate() {
        let port = env.host(i).port.unwrap();
        assert!(
            line.starts_with(&format!("ssh -p {port} 127.0.0.1 ")),
            "{line}"
        );
        assert!(line.contains("sudo -n "), "{line}");
    }
    // What each line runs on its host, run here on that host's directory.
    let remote = lines[0]
        .splitn(5, ' ')
        .nth(4)
        .unwrap()
        .trim_matches('\'')
        .replace("'\\''", "'")
        .replace("sudo -n ", "")
        .replace(&wd.remote, &wd.local[0].display().to_string());
    for _ in 0..2 {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&remote)
            .output()
            .unwrap();
        assert!(out.status.success(), "{remote}: {out:?}");
    }
    assert_eq!(
        std::fs::read_to_string(wd.local[0].join("passphrase"))
            .unwrap()
            .trim_end(),
        new.expose()
    );
    assert!(!wd.local[0].join("passphrase.new").exists());
    store.close().await;
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [store_suite],
    tests: [
        activation_over_ssh_with_sudo_keeps_prev_and_leaves_no_temp_files,
        fans_out_to_every_host_with_owner_group_and_mode,
        activation_failing_on_some_hosts_names_them,
        a_host_that_is_down_fails_preflight_by_name,
        unknown_host_keys_are_refused,
        without_sudo_the_login_user_needs_the_directory,
        a_directory_in_place_of_the_staged_file_fails_preflight,
        the_activation_hint_is_a_command_that_activates,
    ],
}
