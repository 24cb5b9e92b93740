//! Engine behaviour with in-memory fakes and the local adapters on a directory
//! vault: phase order, dry run, rollback, the open window, resume, locking.

mod support;

use std::sync::atomic::Ordering;
use support::fakes::{MemRestarter, MemStore};
use support::sandbox::{log, snapshot, Sandbox, Shown, OLD};
use vsync_orchestrate::api::{Passphrase, RunId};
use vsync_orchestrate::engine::{self, lock::Lock, Exit};
use vsync_orchestrate::plan;

#[tokio::test]
async fn phases_run_in_order_and_activation_follows_the_swap() {
    let sb = Sandbox::new("").await;
    let log = log();
    let mem = MemStore::new("mem", OLD, &log, Some(sb.vault.clone()));
    let restarter = MemRestarter::new(&log);
    let parts = sb
        .parts(vec![sb.file_store(), mem.clone()], Some(restarter))
        .await;
    let shown = Shown::new();
    let wall = std::time::Instant::now();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    let wall_ms = wall.elapsed().as_secs_f64() * 1000.0;
    shown.check(&s);
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    // Phases do not overlap: `rotate` ends at T0, `activate` is the window, and
    // together they never add up to more than the run took.
    assert_eq!(s.phases_ms.get("activate").copied(), s.window_ms);
    let sum: f64 = s.phases_ms.values().sum();
    assert!(
        sum <= wall_ms,
        "phases {:?} add up to {sum} ms of a {wall_ms} ms run",
        s.phases_ms
    );

    let calls: Vec<String> = log.lock().unwrap().clone();
    let pos = |c: &str| {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("{c} missing from {calls:?}"))
    };
    assert!(pos("mem:preflight") < pos("mem:stage"));
    assert!(pos("restarter:preflight") < pos("mem:stage"));
    assert!(pos("mem:stage") < pos("mem:activate"));
    assert!(pos("mem:activate") < pos("restarter:restart"));
    assert!(pos("restarter:restart") < pos("restarter:wait"));

    let seen = mem.seen_pointer.lock().unwrap().clone();
    let (old_stamp, new_stamp) = (s.old_stamp.clone().unwrap(), s.new_stamp.clone().unwrap());
    assert_eq!(
        seen[0],
        ("stage".into(), old_stamp),
        "stage must happen before the swap"
    );
    assert_eq!(
        seen[1],
        ("activate".into(), new_stamp),
        "activate must happen after the swap"
    );

    let new = Passphrase::new(sb.passphrase_file());
    assert!(
        mem.current().same_as(&new),
        "both stores hold the same new passphrase"
    );
    let opened = sb.vault.open(&new).await.unwrap();
    assert_eq!((opened.gen, s.gen_after), (1, Some(1)));
    assert!(s.window_ms.unwrap() < 1000.0, "window {:?}", s.window_ms);
    for phase in [
        "preflight",
        "stage",
        "rotate",
        "activate",
        "restart",
        "verify",
    ] {
        assert!(s.phases_ms.contains_key(phase), "no timing for {phase}");
    }
    // Never a passphrase in the journal or the JSON summary.
    let journal = sb.journal_texts();
    let json = serde_json::to_string(&s).unwrap();
    for secret in [OLD, new.expose()] {
        assert!(!journal.contains(secret) && !json.contains(secret));
    }
    assert!(
        Lock::peek(&sb.vault).await.unwrap().is_none(),
        "the lock is released"
    );
}

#[tokio::test]
async fn dry_run_makes_zero_writes() {
    let sb = Sandbox::new(
        "[[restart]]\ntype = \"command\"\ntargets = [{ name = \"noop\", argv = [\"true\"] }]\n",
    )
    .await;
    let before = snapshot(sb.dir.path());
    let shown = Shown::new();
    let s = engine::run(&sb.loaded, &sb.opts(), &shown.p, true).await;
    shown.check(&s);
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    assert!(
        s.planned_writes.iter().any(|w| w.contains("T0")),
        "{:?}",
        s.planned_writes
    );
    assert!(s.planned_writes.len() >= 8);
    assert_eq!(snapshot(sb.dir.path()), before, "the dry run changed files");
}

#[tokio::test]
async fn stage_failure_discards_and_leaves_the_vault_untouched() {
    let sb = Sandbox::new("").await;
    let log = log();
    let bad = MemStore::new("bad", OLD, &log, None);
    bad.fail_stage.store(true, Ordering::SeqCst);
    let vault_before = snapshot(&sb.dir.path().join("vault"));
    let parts = sb.parts(vec![sb.file_store(), bad.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, Exit::StageFailed.code(), "{}", s.outcome);
    assert!(
        !sb.dir.path().join("passphrase.new").exists(),
        "the file store's stage was not discarded"
    );
    assert_eq!(sb.passphrase_file(), OLD);
    let mut vault_after = snapshot(&sb.dir.path().join("vault"));
    vault_after.retain(|p, _| {
        !p.to_string_lossy().contains(".vsync-orchestrate.lock")
            && !p
                .to_string_lossy()
                .contains(".vsync-meta/app/prod/.vsync-orchestrate.lock")
    });
    assert_eq!(vault_after, vault_before, "the vault changed");
    assert!(Lock::peek(&sb.vault).await.unwrap().is_none());
}

#[tokio::test]
async fn activation_failure_reports_the_open_window_and_resume_closes_it() {
    let sb = Sandbox::new("").await;
    let log = log();
    let flaky = MemStore::new("flaky", OLD, &log, None);
    flaky.fail_activate.store(usize::MAX, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store(), flaky.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, Exit::WindowOpen.code());
    assert!(
        s.outcome.contains("WINDOW OPEN") && s.outcome.contains("memory flaky"),
        "{}",
        s.outcome
    );
    let steps = s.next_steps.join("\n");
    assert!(steps.contains("vsync-orchestrate resume"), "{steps}");
    assert!(
        steps.contains("memctl activate flaky v-"),
        "the exact manual step is missing: {steps}"
    );
    assert!(flaky.current().same_as(&Passphrase::from(OLD)));
    assert!(
        Lock::peek(&sb.vault).await.unwrap().is_some(),
        "the lock stays while the window is open"
    );

    flaky.fail_activate.store(0, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store(), flaky.clone()], None).await;
    let shown = Shown::new();
    let r = engine::resume_with(&sb.loaded, parts, &sb.opts(), &shown.p).await;
    shown.check(&r);
    assert_eq!(r.exit_code, 0, "{}", r.outcome);
    let new = Passphrase::new(sb.passphrase_file());
    assert!(flaky.current().same_as(&new));
    assert_eq!(sb.vault.open(&new).await.unwrap().gen, 1);
    assert!(Lock::peek(&sb.vault).await.unwrap().is_none());
}

#[tokio::test]
async fn a_stalled_activation_is_given_up_after_its_attempt_timeout_and_sent_again() {
    let sb = Sandbox::new("").await;
    let log = log();
    let slow = MemStore::new("slow", OLD, &log, None);
    // The first request stalls before it is applied; the second one answers.
    slow.stall_activate.store(1, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store(), slow.clone()], None).await;
    let mut opts = sb.opts();
    opts.activate_attempt = std::time::Duration::from_millis(300);
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &opts, &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    let new = Passphrase::new(sb.passphrase_file());
    assert!(slow.current().same_as(&new));
    let calls = log.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| *c == "slow:activate").count(),
        2,
        "{calls:?}"
    );
    let w = s.window_ms.unwrap();
    assert!(
        (300.0..3000.0).contains(&w),
        "window {w} ms: one attempt timeout, then the retry"
    );
}

#[tokio::test]
async fn a_store_that_never_answers_keeps_the_window_open_for_the_deadline_only() {
    for applied in [false, true] {
        let sb = Sandbox::new("").await;
        let log = log();
        let hung = MemStore::new("hung", OLD, &log, None);
        hung.stall_activate.store(usize::MAX, Ordering::SeqCst);
        hung.stall_after_applying.store(applied, Ordering::SeqCst);
        let parts = sb.parts(vec![sb.file_store(), hung.clone()], None).await;
        let mut opts = sb.opts();
        opts.activate_attempt = std::time::Duration::from_millis(200);
        opts.activate_deadline = std::time::Duration::from_millis(1500);
        let shown = Shown::new();
        let t = std::time::Instant::now();
        let s = engine::run_with(&sb.loaded, parts, &opts, &shown.p, false).await;
        shown.check(&s);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the run ended {:?} after it started",
            t.elapsed()
        );
        if applied {
            // Every answer was lost but the switch happened: reading it back says so.
            assert_eq!(s.exit_code, 0, "{}", s.outcome);
            let w = s.window_ms.unwrap();
            assert!((1500.0..5000.0).contains(&w), "window {w} ms");
            assert!(
                s.targets
                    .iter()
                    .any(|r| r.detail.contains("its answer was lost")),
                "{:?}",
                s.targets
            );
        } else {
            assert_eq!(s.exit_code, Exit::WindowOpen.code(), "{}", s.outcome);
            assert!(s.outcome.contains("memory hung"), "{}", s.outcome);
            assert!(hung.current().same_as(&Passphrase::from(OLD)));
        }
    }
}

#[tokio::test]
async fn a_held_lock_stops_the_run_before_anything_is_staged() {
    let sb = Sandbox::new("").await;
    let other = RunId("someone-else".into());
    let _held = Lock::acquire(
        &sb.vault,
        &other,
        std::time::Duration::from_secs(600),
        &Default::default(),
    )
    .await
    .unwrap();
    let log = log();
    let mem = MemStore::new("mem", OLD, &log, None);
    let parts = sb.parts(vec![mem.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, Exit::LockHeld.code(), "{}", s.outcome);
    assert!(s.outcome.contains("someone-else"));
    assert!(!log.lock().unwrap().iter().any(|c| c == "mem:stage"));
}

#[tokio::test]
async fn a_wrong_old_passphrase_is_exit_1_with_nothing_staged() {
    let sb = Sandbox::new("").await;
    let log = log();
    let mem = MemStore::new("mem", "not-the-right-passphrase-xyz", &log, None);
    let parts = sb.parts(vec![mem.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, 1, "{}", s.outcome);
    assert!(
        !s.outcome.contains("not-the-right-passphrase"),
        "the error leaks the passphrase"
    );
    assert!(!log.lock().unwrap().iter().any(|c| c == "mem:stage"));
}

#[tokio::test]
async fn stores_that_disagree_fail_preflight() {
    let sb = Sandbox::new("").await;
    let log = log();
    let other = MemStore::new("other", "a-different-passphrase-abc", &log, None);
    let parts = sb.parts(vec![sb.file_store(), other], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, Exit::PreflightFailed.code(), "{}", s.outcome);
    assert!(s.outcome.contains("memory other"));
}

#[tokio::test]
async fn a_concurrent_rotation_is_exit_3_and_everything_staged_is_discarded() {
    let sb = Sandbox::new("").await;
    let log = log();
    let mem = MemStore::new("mem", OLD, &log, None);
    // While we stage, someone else moves the pointer.
    let storage = sb.vault.storage.clone();
    *mem.on_stage.lock().unwrap() = Some(Box::new(move || {
        let body = b"RQEM000129990101-000000{}".to_vec();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    storage
                        .put(
                            "app/prod/manifest",
                            body,
                            vsync_orchestrate::vault::storage::PutCondition::None,
                            &Default::default(),
                        )
                        .await
                        .unwrap();
                })
        })
        .join()
        .unwrap();
    }));
    let parts = sb.parts(vec![sb.file_store(), mem.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, 3, "{}", s.outcome);
    assert!(
        mem.staged.lock().unwrap().is_none(),
        "the staged version was not discarded"
    );
    assert!(!sb.dir.path().join("passphrase.new").exists());
    assert_eq!(sb.passphrase_file(), OLD);
}

#[tokio::test]
async fn schedule_not_due_exits_0_without_touching_anything() {
    let sb = Sandbox::new("[schedule]\nmin_age = \"80d\"\n").await;
    let log = log();
    // Never rotated: due, whatever the bundle's age.
    let parts = sb.parts(vec![sb.file_store()], None).await;
    let shown = Shown::new();
    let first = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&first);
    assert_eq!(
        (first.exit_code, first.gen_after),
        (0, Some(1)),
        "{}",
        first.outcome
    );
    let current = sb.passphrase_file();
    let mem = MemStore::new("mem", &current, &log, None);
    let parts = sb.parts(vec![mem.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, 0);
    assert!(s.outcome.starts_with("not due"), "{}", s.outcome);
    assert!(!log.lock().unwrap().iter().any(|c| c == "mem:stage"));
    let mut forced = sb.opts();
    forced.force = true;
    let parts = sb.parts(vec![sb.file_store()], None).await;
    let shown = Shown::new();
    let again = engine::run_with(&sb.loaded, parts, &forced, &shown.p, false).await;
    shown.check(&again);
    assert_eq!(
        (again.exit_code, again.gen_after),
        (0, Some(2)),
        "--force rotates anyway: {}",
        again.outcome
    );
}

#[tokio::test]
async fn a_failed_restart_is_reported_after_activation() {
    let sb = Sandbox::new("").await;
    let log = log();
    let restarter = MemRestarter::new(&log);
    restarter.fail.store(true, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store()], Some(restarter)).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, Exit::RestartFailed.code(), "{}", s.outcome);
    assert_ne!(
        sb.passphrase_file(),
        OLD,
        "activation must still have happened"
    );
    assert!(s
        .next_steps
        .iter()
        .any(|n| n.contains("the fake rollout failed")));
}

/// Vault content at its limits is an error with the upstream class, before
/// anything is staged: no panic, no lock, no `.new` file.
#[tokio::test]
async fn stamps_and_generations_at_their_limits_are_refused_before_staging() {
    use vsync_orchestrate::vault::{seal, stamp::Stamp, storage::Meta, storage::PutCondition};
    for (what, code, needle) in [
        ("stamp", 1, "BundleCorruptError"),
        ("gen", 3, "cannot be incremented"),
        ("garbage", 1, "cannot be read as a pointer"),
    ] {
        let sb = Sandbox::new("").await;
        let storage = sb.vault.storage.clone();
        match what {
            "stamp" => {
                let last = Stamp::parse("99991231-235959").unwrap();
                let key = sb.vault.key("manifest");
                storage
                    .put(
                        &key,
                        seal::seal(&last, b""),
                        PutCondition::None,
                        &Meta::new(),
                    )
                    .await
                    .unwrap();
            }
            "gen" => {
                let body = format!("{{\"gen\":{}}}", u64::MAX);
                storage
                    .put(
                        &sb.vault.key("latest.meta"),
                        body.into_bytes(),
                        PutCondition::None,
                        &Meta::new(),
                    )
                    .await
                    .unwrap();
            }
            _ => {
                storage
                    .put(
                        &sb.vault.key("manifest"),
                        b"not a pointer".to_vec(),
                        PutCondition::None,
                        &Meta::new(),
                    )
                    .await
                    .unwrap();
            }
        }
        let shown = Shown::new();
        let s = engine::run(&sb.loaded, &sb.opts(), &shown.p, false).await;
        shown.check(&s);
        assert_eq!(s.exit_code, code, "{what}: {}", s.outcome);
        assert!(s.outcome.contains(needle), "{what}: {}", s.outcome);
        assert!(
            !s.outcome.contains("old passphrase"),
            "{what}: reported as a passphrase problem: {}",
            s.outcome
        );
        assert_eq!(sb.passphrase_file(), OLD, "{what}");
        assert!(!sb.dir.path().join("passphrase.new").exists(), "{what}");
        assert!(Lock::peek(&sb.vault).await.unwrap().is_none(), "{what}");
        let shown = Shown::new();
        let r = engine::resume(&sb.loaded, &sb.opts(), &shown.p).await;
        shown.check(&r);
        assert_eq!(r.exit_code, 0, "{what}: {}", r.outcome);
        assert!(
            r.outcome.contains("nothing to resume"),
            "{what}: {}",
            r.outcome
        );
    }
}

/// A kill during a journal save leaves a temp copy of the journal beside it; it is
/// never read as a run, and a finished run is never reopened.
#[tokio::test]
async fn a_half_written_journal_is_not_a_run_to_resume() {
    let sb = Sandbox::new("").await;
    let shown = Shown::new();
    let s = engine::run(&sb.loaded, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    let runs = sb.dir.path().join("state/runs");
    let journal = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let text = std::fs::read_to_string(&journal)
        .unwrap()
        .replace("\"phase\": \"done\"", "\"phase\": \"committed\"");
    std::fs::write(runs.join(".vsync-tmp-00112233aabbccdd"), text).unwrap();

    let shown = Shown::new();
    let r = engine::resume(&sb.loaded, &sb.opts(), &shown.p).await;
    shown.check(&r);
    assert_eq!(r.exit_code, 0, "{}", r.outcome);
    assert!(r.outcome.contains("nothing to resume"), "{}", r.outcome);
    assert!(Lock::peek(&sb.vault).await.unwrap().is_none());
    let shown = Shown::new();
    let again = engine::run(&sb.loaded, &sb.opts(), &shown.p, false).await;
    shown.check(&again);
    assert_eq!(again.exit_code, 0, "{}", again.outcome);
    assert_eq!(again.gen_after, Some(2));
}

/// `plan` and `run` never create a vault directory that is not there.
#[tokio::test]
async fn a_missing_vault_directory_is_not_created() {
    let sb = Sandbox::new("").await;
    let missing = sb.dir.path().join("elsewhere");
    let text = std::fs::read_to_string(&sb.loaded.path).unwrap().replace(
        &format!("{}/vault", sb.dir.path().display()),
        &missing.display().to_string(),
    );
    let path = sb.dir.path().join("missing.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = plan::load(&path).unwrap();
    for dry in [true, false] {
        let shown = Shown::new();
        let s = engine::run(&loaded, &sb.opts(), &shown.p, dry).await;
        shown.check(&s);
        assert_eq!(s.exit_code, 5, "{}", s.outcome);
        assert!(!missing.exists(), "the vault directory was created");
    }
}

/// A crash after `restart` returned and before its wait ended: the rollout is in
/// the journal, so `resume` waits on it and starts no second one.
#[tokio::test]
async fn resume_waits_on_a_journaled_rollout_and_never_restarts_twice() {
    let sb = Sandbox::new("").await;
    let restarter = MemRestarter::new(&log());
    *restarter.takes.lock().unwrap() = std::time::Duration::from_secs(30);
    let parts = sb
        .parts(vec![sb.file_store()], Some(restarter.clone()))
        .await;
    let (loaded, opts) = (sb.loaded.clone(), sb.opts());
    let crashed = tokio::spawn(async move {
        let p = vsync_orchestrate::report::Progress::quiet();
        engine::run_with(&loaded, parts, &opts, &p, false).await
    });
    let began = std::time::Instant::now();
    while !sb.journal_texts().contains("\"phase\": \"restarting\"") {
        assert!(began.elapsed().as_secs() < 20, "the rollout never started");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    crashed.abort(); // the process dies mid-wait
    let _ = crashed.await;
    assert_eq!(restarter.restarts.load(Ordering::SeqCst), 1);

    // A fresh restarter instance, as after a real crash, sharing the platform's count.
    let again = MemRestarter::counting(&log(), restarter.restarts.clone());
    let parts = sb.parts(vec![sb.file_store()], Some(again.clone())).await;
    let shown = Shown::new();
    let r = engine::resume_with(&sb.loaded, parts, &sb.opts(), &shown.p).await;
    shown.check(&r);
    assert_eq!(r.exit_code, 0, "{}", r.outcome);
    assert_eq!(
        restarter.restarts.load(Ordering::SeqCst),
        1,
        "resume started a second rollout"
    );
    assert!(again
        .log
        .lock()
        .unwrap()
        .contains(&"restarter:wait".to_owned()));
    assert_eq!(sb.vault.status().await.unwrap().unwrap().gen, 1);
}

/// The lock is renewed while the run holds it: a rollout that outlasts the lock's
/// TTL keeps it, and a second run started meanwhile is refused.
#[tokio::test]
async fn a_long_rollout_keeps_the_lock_a_second_run_is_refused() {
    let sb = Sandbox::new("").await;
    let restarter = MemRestarter::new(&log());
    *restarter.takes.lock().unwrap() = std::time::Duration::from_secs(5);
    let parts = sb
        .parts(vec![sb.file_store()], Some(restarter.clone()))
        .await;
    let mut opts = sb.opts();
    opts.lock_ttl = std::time::Duration::from_secs(2);
    let (loaded, first_opts) = (sb.loaded.clone(), opts.clone());
    let first = tokio::spawn(async move {
        let p = vsync_orchestrate::report::Progress::quiet();
        engine::run_with(&loaded, parts, &first_opts, &p, false).await
    });
    while !sb.journal_texts().contains("\"phase\": \"restarting\"") {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Past the TTL: without renewal the lock would have expired by now.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let held = Lock::peek(&sb.vault)
        .await
        .unwrap()
        .expect("the lock is still held");
    let mem = MemStore::new("mem", OLD, &log(), None);
    let parts = sb.parts(vec![mem], None).await;
    let shown = Shown::new();
    let second = engine::run_with(&sb.loaded, parts, &opts, &shown.p, false).await;
    shown.check(&second);
    assert_eq!(
        second.exit_code,
        Exit::LockHeld.code(),
        "{}",
        second.outcome
    );
    assert!(second.outcome.contains(&held.run_id), "{}", second.outcome);

    let s = first.await.unwrap();
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    assert!(Lock::peek(&sb.vault).await.unwrap().is_none());
}

/// A run that read the store before another run rotated and the pointer after:
/// the old passphrase no longer opens the live bundle, but that is a lost race,
/// not a wrong passphrase or a tampered bundle. The winner still holds the lock.
#[tokio::test]
async fn a_lost_race_with_the_winner_holding_the_lock_exits_11_not_1() {
    let sb = Sandbox::new("").await;
    let parts = sb.parts(vec![sb.file_store()], None).await;
    let won = engine::run_with(&sb.loaded, parts, &sb.opts(), &Shown::new().p, false).await;
    assert_eq!(won.exit_code, 0, "{}", won.outcome);
    let winner = Lock::acquire(
        &sb.vault,
        &RunId("20261207T000000Z-winner".into()),
        std::time::Duration::from_secs(600),
        &engine::lock::Takeover {
            run: None,
            finished: vec![],
        },
    )
    .await
    .unwrap();
    // The loser's store still shows the passphrase it read before the winner's T1.
    let stale = MemStore::new("mem", OLD, &log(), None);
    let parts = sb.parts(vec![stale], None).await;
    let shown = Shown::new();
    let lost = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&lost);
    assert_eq!(lost.exit_code, Exit::LockHeld.code(), "{}", lost.outcome);
    assert!(
        lost.outcome.contains("20261207T000000Z-winner"),
        "{}",
        lost.outcome
    );
    assert!(!lost.outcome.contains("tampered"), "{}", lost.outcome);
    winner.release(&sb.vault).await.unwrap();
}

/// The same race after the winner released its lock: the store serves another
/// value than a moment ago, which says the same.
#[tokio::test]
async fn a_lost_race_after_the_winner_finished_exits_11_not_1() {
    let sb = Sandbox::new("").await;
    let parts = sb.parts(vec![sb.file_store()], None).await;
    let won = engine::run_with(&sb.loaded, parts, &sb.opts(), &Shown::new().p, false).await;
    assert_eq!(won.exit_code, 0, "{}", won.outcome);
    let stale = MemStore::new("mem", OLD, &log(), None);
    *stale.next_current.lock().unwrap() = Some(Passphrase::new(sb.passphrase_file()));
    let parts = sb.parts(vec![stale], None).await;
    let shown = Shown::new();
    let lost = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&lost);
    assert_eq!(lost.exit_code, Exit::LockHeld.code(), "{}", lost.outcome);
    assert!(
        lost.outcome.contains("another run rotated"),
        "{}",
        lost.outcome
    );
    assert_eq!(sb.vault.status().await.unwrap().unwrap().gen, 1);
}

/// A lock object that does not parse is neither taken over nor ignored: `plan` and
/// `run` refuse with exit 11 and the command that removes it; nothing is written.
#[tokio::test]
async fn an_unparsable_lock_is_refused_with_the_command_that_removes_it() {
    use vsync_orchestrate::vault::storage::{Meta, PutCondition};
    let sb = Sandbox::new("").await;
    let key = Lock::key(&sb.vault);
    sb.vault
        .storage
        .put(
            &key,
            b"<html>not a lock</html>".to_vec(),
            PutCondition::IfAbsent,
            &Meta::new(),
        )
        .await
        .unwrap();
    let before = sb.vault.status().await.unwrap().unwrap();
    for dry_run in [true, false] {
        let parts = sb.parts(vec![sb.file_store()], None).await;
        let shown = Shown::new();
        let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, dry_run).await;
        shown.check(&s);
        assert_eq!(
            s.exit_code,
            Exit::LockHeld.code(),
            "dry run {dry_run}: {}",
            s.outcome
        );
        assert!(s.outcome.contains("does not parse"), "{}", s.outcome);
        let steps = s.next_steps.join("\n");
        assert!(
            steps.contains("remove the lock") && steps.contains(&key),
            "{steps}"
        );
    }
    let after = sb.vault.status().await.unwrap().unwrap();
    assert_eq!(after.stamp, before.stamp);
    assert_eq!(sb.passphrase_file(), OLD);
    let still = sb.vault.storage.get(&key).await.unwrap().unwrap();
    assert_eq!(still.body, b"<html>not a lock</html>");
}

/// `plan` passes only where `run` can write its journal: a state directory whose
/// path runs through a file is refused by both, before anything is written.
#[tokio::test]
async fn a_state_dir_that_cannot_be_a_directory_fails_plan_and_run_alike() {
    let sb = Sandbox::new("").await;
    let file = sb.dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let mut opts = sb.opts();
    opts.state_dir = file.join("state");
    for dry_run in [true, false] {
        let parts = sb.parts(vec![sb.file_store()], None).await;
        let shown = Shown::new();
        let s = engine::run_with(&sb.loaded, parts, &opts, &shown.p, dry_run).await;
        shown.check(&s);
        assert_eq!(
            s.exit_code,
            Exit::PreflightFailed.code(),
            "dry run {dry_run}: {}",
            s.outcome
        );
        assert!(
            s.outcome.contains("is not a directory")
                && s.outcome.contains(&file.display().to_string()),
            "{}",
            s.outcome
        );
    }
    assert_eq!(sb.passphrase_file(), OLD);
    assert!(Lock::peek(&sb.vault).await.unwrap().is_none());
}
