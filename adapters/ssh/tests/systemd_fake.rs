//! The restarter suite on the systemd restarter's local transport, against a FAKE
//! `systemctl` / `journalctl` (shell scripts keeping unit state in files) put first
//! on this test process's PATH. It runs everywhere, so the restarter's own logic
//! (the restart marker, settling, failure reports, deadlines) is checked on every
//! machine; `systemd_nspawn.rs` runs the same suite against a real systemd.
//!
//! The fake models what the restarter reads: `list-units`, `show` (LoadState,
//! ActiveState, SubState, NRestarts, InvocationID), `restart` and the journal. A
//! stalling unit stays `activating (start)`; unlike a real systemd, its `restart`
//! returns at once (as with `--no-block`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use vsync_orchestrate_api::{async_trait, RestartContext, Restarter, RunId};
use vsync_orchestrate_ssh::{SystemdConfig, SystemdRestarter, Transport};
use vsync_orchestrate_testkit::restarter::{RestartTarget, RestarterFixture, Scenario};

const SYSTEMCTL: &str = r#"#!/bin/sh
# Fake systemctl: unit state lives in $VSYNC_FAKE_SYSTEMD/<unit>/.
set -u
S=$VSYNC_FAKE_SYSTEMD
cmd=$1; shift
case "$cmd" in
list-units)
  for a in "$@"; do case "$a" in --*) ;; *) pat=$a ;; esac; done
  for d in "$S"/*/; do
    u=$(basename "$d")
    case "$u" in $pat) echo "$u loaded $(cat "$d/active") $(cat "$d/sub") fake unit" ;; esac
  done ;;
show)
  for u in "$@"; do
    case "$u" in --*) continue ;; esac
    d="$S/$u"
    echo "Id=$u"
    if [ -d "$d" ]; then
      echo "LoadState=loaded"
      echo "ActiveState=$(cat "$d/active")"
      echo "SubState=$(cat "$d/sub")"
      echo "NRestarts=0"
      echo "InvocationID=$(cat "$d/invocation")"
    else
      echo "LoadState=not-found"; echo "ActiveState=inactive"; echo "SubState=dead"
      echo "NRestarts=0"; echo "InvocationID="
    fi
    echo
  done ;;
restart)
  u=$1; d="$S/$u"
  [ -d "$d" ] || { echo "Failed to restart $u: Unit $u not found." >&2; exit 5; }
  if [ "$(cat "$d/behaviour")" = refusing ]; then
    echo "Failed to restart $u: Access denied" >&2; exit 4
  fi
  echo start >>"$d/starts"
  echo "inv-$(wc -l <"$d/starts")-$$" >"$d/invocation"
  case "$(cat "$d/behaviour")" in
  healthy) echo active >"$d/active"; echo running >"$d/sub" ;;
  stalling) echo activating >"$d/active"; echo start >"$d/sub" ;;
  failing)
    echo failed >"$d/active"; echo failed >"$d/sub"
    echo "$u: cannot read the vault" >>"$d/journal"
    echo "Job for $u failed because the control process exited with error code." >&2
    exit 1 ;;
  esac ;;
*) echo "fake systemctl: $cmd is not modelled" >&2; exit 1 ;;
esac
"#;

const JOURNALCTL: &str = r#"#!/bin/sh
# Fake journalctl: journalctl -u UNIT -n N ...
set -u
while [ $# -gt 0 ]; do
  case "$1" in -u) u=$2; shift ;; -n) n=$2; shift ;; esac
  shift
done
tail -n "$n" "$VSYNC_FAKE_SYSTEMD/$u/journal" 2>/dev/null || true
"#;

/// The fake's directory, set up once per test process: the scripts first on PATH,
/// the unit state, and the restart markers (`XDG_STATE_HOME`) out of the real home.
fn fake_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("vsync-fake-systemd-{}", std::process::id()));
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(root.join("units")).unwrap();
        for (name, text) in [("systemctl", SYSTEMCTL), ("journalctl", JOURNALCTL)] {
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::var("PATH").unwrap_or_default();
        std::env::set_var("PATH", format!("{}:{path}", bin.display()));
        std::env::set_var("VSYNC_FAKE_SYSTEMD", root.join("units"));
        std::env::set_var("XDG_STATE_HOME", root.join("state"));
        root
    })
}

struct FakeSystemd;

struct FakeUnit {
    unit: String,
    dir: PathBuf,
}

#[async_trait]
impl RestarterFixture for FakeSystemd {
    async fn target(&self, scenario: Scenario) -> Box<dyn RestartTarget> {
        Box::new(self.unit(scenario))
    }

    fn healthy_within(&self) -> Duration {
        Duration::from_secs(20)
    }
}

impl FakeSystemd {
    fn unit(&self, scenario: Scenario) -> FakeUnit {
        let unit = format!(
            "{}.service",
            vsync_orchestrate_testkit::unique("fake").replace('-', "_")
        );
        let dir = fake_root().join("units").join(&unit);
        std::fs::create_dir_all(&dir).unwrap();
        let behaviour = match scenario {
            Scenario::Healthy => "healthy",
            Scenario::Failing => "failing",
            Scenario::Stalling => "stalling",
        };
        for (f, v) in [
            ("behaviour", behaviour),
            ("active", "active"),
            ("sub", "running"),
            ("invocation", "inv-boot"),
        ] {
            std::fs::write(dir.join(f), format!("{v}\n")).unwrap();
        }
        FakeUnit { unit, dir }
    }
}

fn restarter(units: &[&str]) -> SystemdRestarter {
    let mut cfg = SystemdConfig::new(
        Transport::Local,
        units.iter().map(|u| u.to_string()).collect(),
    );
    cfg.settle = Duration::from_millis(300);
    cfg.poll_interval = Duration::from_millis(50);
    SystemdRestarter::new(cfg).unwrap()
}

#[async_trait]
impl RestartTarget for FakeUnit {
    async fn open(&self) -> Arc<dyn Restarter> {
        Arc::new(restarter(&[&self.unit]))
    }

    async fn starts(&self) -> usize {
        std::fs::read_to_string(self.dir.join("starts"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

async fn fake_systemd() -> Option<FakeSystemd> {
    fake_root();
    Some(FakeSystemd)
}

vsync_orchestrate_testkit::restarter_suite!(fake_systemd());

/// The marker is per restarter: two tables of one run on one host (different units)
/// each restart their own units.
async fn two_restarters_of_one_run_each_restart_their_units() {
    let fx = FakeSystemd;
    let a = fx.unit(Scenario::Healthy);
    let b = fx.unit(Scenario::Healthy);
    let run = RestartContext::new(RunId(vsync_orchestrate_testkit::unique("two")));
    a.open().await.restart(&run).await.unwrap();
    b.open().await.restart(&run).await.unwrap();
    assert_eq!((a.starts().await, b.starts().await), (1, 1));
    // And a fresh instance of the first, same run: nothing more.
    a.open().await.restart(&run).await.unwrap();
    assert_eq!(a.starts().await, 1);
}

/// A crash after the marker was written but before the unit was restarted (here:
/// the restart itself was refused): the next `restart` of the run restarts it, once.
async fn a_marker_without_a_restart_still_restarts_the_unit() {
    let fx = FakeSystemd;
    let t = fx.unit(Scenario::Healthy);
    let behaviour = t.dir.join("behaviour");
    let run = RestartContext::new(RunId(vsync_orchestrate_testkit::unique("crash")));
    std::fs::write(&behaviour, "refusing\n").unwrap();
    let e = t.open().await.restart(&run).await.unwrap_err();
    assert_eq!(
        e.kind(),
        vsync_orchestrate_api::ErrorKind::Permission,
        "{}",
        e.chain()
    );
    assert_eq!(t.starts().await, 0);
    std::fs::write(&behaviour, "healthy\n").unwrap();
    let again = t.open().await.restart(&run).await.unwrap();
    assert_eq!(t.starts().await, 1, "the unit still on its old invocation");
    let third = t.open().await.restart(&run).await.unwrap();
    assert_eq!(third.id, again.id);
    assert_eq!(t.starts().await, 1);
}

// This target's `main` (`harness = false` in Cargo.toml): a test here is a plain
// `async fn` listed below; a `#[tokio::test]` would never run.
vsync_orchestrate_testkit::main! {
    suites: [restarter_suite],
    tests: [
        two_restarters_of_one_run_each_restart_their_units,
        a_marker_without_a_restart_still_restarts_the_unit,
    ],
}
