//! The store suite: what the engine assumes of every [`SecretStore`], one named
//! check per assumption. Checks that need a capability the store does not declare
//! (`read_current`, `read_staged`) say so on stderr and pass: a Vercel "sensitive"
//! variable cannot be read back, and the engine asks before it relies on that.
//!
//! An adapter's test file provides a [`StoreFixture`], writes
//! `vsync_orchestrate_testkit::store_suite!(fixture());` where `fixture()` is an
//! `async fn` returning `Option<impl StoreFixture>` (`None`: the service is missing
//! and the test skipped, see [`crate::service`]), and runs the checks from its
//! `main` ([`crate::main!`], in a `harness = false` target), where a skipped check
//! shows as ignored with the reason.

use crate::{ensure, step, unique, Outcome, Violation};
use std::sync::Arc;
use vsync_orchestrate_api::{
    async_trait, ErrorKind, Passphrase, RunId, SecretStore, Staged, StoreCapabilities,
};

/// Makes isolated targets for the checks: one per check, so they can run in
/// parallel against one service.
#[async_trait]
pub trait StoreFixture: Send + Sync {
    /// A new target (secret, file) whose current value is `initial`.
    async fn seed(&self, initial: &Passphrase) -> Box<dyn SeededStore>;
}

/// One seeded target.
#[async_trait]
pub trait SeededStore: Send + Sync {
    /// A freshly built store on the target, as a new process (after a crash) builds it.
    async fn open(&self) -> Arc<dyn SecretStore>;

    /// What an app booting now reads, through the platform itself rather than the
    /// adapter; `None` where the test cannot observe it. Write-only stores use this
    /// to prove activation.
    async fn app_view(&self) -> Option<Passphrase> {
        None
    }
}

const INITIAL: &str = "suite-initial-Qm4Zt8Lw2Nc6Vx";
const FIRST: &str = "suite-first-7Yq2NnQ8vB3kLp0Z";
const SECOND: &str = "suite-second-Hd83JxQm1Pz6Wc4T";

struct Case {
    seeded: Box<dyn SeededStore>,
    store: Arc<dyn SecretStore>,
    caps: StoreCapabilities,
}

async fn case(f: &dyn StoreFixture) -> Case {
    let seeded = f.seed(&Passphrase::from(INITIAL)).await;
    let store = seeded.open().await;
    let caps = store.capabilities();
    Case {
        seeded,
        store,
        caps,
    }
}

fn skipped(check: &str, capability: &str) {
    eprintln!("store suite: {check}: the store declares no `{capability}`; that part is skipped");
}

fn run(tag: &str) -> RunId {
    RunId(unique(&format!("suite-{tag}")))
}

/// The value apps get now, through the adapter when it can read it back, else
/// through the fixture's view of the platform. `None`: not observable at all.
async fn current(c: &Case, what: &str) -> Result<Option<Passphrase>, Violation> {
    if c.caps.read_current {
        let got = step(what, c.store.read_current().await)?;
        ensure!(
            got.is_some(),
            "{what}: read_current returned None although the store declares read_current"
        );
        return Ok(got);
    }
    Ok(c.seeded.app_view().await)
}

async fn expect_current(c: &Case, what: &str, want: &str) -> Outcome {
    if let Some(got) = current(c, what).await? {
        ensure!(
            got.same_as(&Passphrase::from(want)),
            "{what}: the current value is not the expected one"
        );
    }
    Ok(())
}

fn no_secret_in(text: &str, what: &str) -> Outcome {
    for s in [INITIAL, FIRST, SECOND] {
        ensure!(!text.contains(s), "{what} contains a passphrase");
    }
    Ok(())
}

fn no_secret_in_staged(s: &Staged) -> Outcome {
    no_secret_in(&format!("{s:?}"), "Staged (Debug)")?;
    no_secret_in(
        &serde_json::to_string(s).unwrap_or_default(),
        "the journaled Staged",
    )
}

/// Preflight succeeds on a healthy target and changes nothing apps see.
pub async fn preflight_is_read_only(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    let p = step("preflight", c.store.preflight().await)?;
    no_secret_in(
        &format!("{} {:?}", p.detail, p.warnings),
        "the preflight report",
    )?;
    step("preflight (repeat)", c.store.preflight().await)?;
    expect_current(&c, "after preflight", INITIAL).await
}

/// `read_current` returns the seeded value.
pub async fn read_current_returns_the_current_value(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    if !c.caps.read_current {
        skipped("read_current_returns_the_current_value", "read_current");
        return Ok(());
    }
    expect_current(&c, "read_current", INITIAL).await
}

/// A staged value is invisible to apps until `activate`, and the record of the
/// stage never holds the value.
pub async fn stage_is_invisible_until_activate(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    step("preflight", c.store.preflight().await)?;
    let staged = step(
        "stage",
        c.store.stage(&Passphrase::from(FIRST), &run("inv")).await,
    )?;
    no_secret_in_staged(&staged)?;
    expect_current(&c, "after stage", INITIAL).await
}

/// `read_staged` gives back what was staged, so `resume` can finish a run.
pub async fn read_staged_returns_the_staged_value(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    if !c.caps.read_staged {
        skipped("read_staged_returns_the_staged_value", "read_staged");
        return Ok(());
    }
    let staged = step(
        "stage",
        c.store.stage(&Passphrase::from(FIRST), &run("rs")).await,
    )?;
    let back = step("read_staged", c.store.read_staged(&staged).await)?;
    ensure!(
        back.same_as(&Passphrase::from(FIRST)),
        "read_staged did not return the staged value"
    );
    Ok(())
}

/// Staging twice in one run (a retry) creates no second version.
pub async fn stage_is_idempotent_per_run(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    let r = run("idem");
    let first = step("stage", c.store.stage(&Passphrase::from(FIRST), &r).await)?;
    let again = step(
        "stage (repeat)",
        c.store.stage(&Passphrase::from(FIRST), &r).await,
    )?;
    ensure!(
        again.version == first.version,
        "staging twice in one run created a second version ({} then {})",
        first.version,
        again.version
    );
    Ok(())
}

/// `discard` undoes a stage, is idempotent, and leaves the current value alone.
pub async fn discard_undoes_a_stage(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    let staged = step(
        "stage",
        c.store.stage(&Passphrase::from(FIRST), &run("disc")).await,
    )?;
    step("discard", c.store.discard(&staged).await)?;
    step("discard (repeat)", c.store.discard(&staged).await)?;
    expect_current(&c, "after discard", INITIAL).await?;
    if c.caps.read_staged {
        match c.store.read_staged(&staged).await {
            Ok(p) => ensure!(
                !p.same_as(&Passphrase::from(FIRST)),
                "read_staged still returns a discarded value"
            ),
            Err(e) => {
                no_secret_in(&e.chain(), "an error")?;
                ensure!(
                    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict),
                    "read_staged after discard should be not found or conflict, was {}",
                    e.kind()
                );
            }
        }
    }
    Ok(())
}

/// `activate` makes the staged value current; activating and tidying twice is
/// success.
pub async fn activate_makes_it_current(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    let staged = step(
        "stage",
        c.store.stage(&Passphrase::from(SECOND), &run("act")).await,
    )?;
    step("activate", c.store.activate(&staged).await)?;
    step("activate (repeat)", c.store.activate(&staged).await)?;
    step("tidy", c.store.tidy(&staged).await)?;
    step("tidy (repeat)", c.store.tidy(&staged).await)?;
    let seen = current(&c, "after activate").await?;
    ensure!(
        seen.is_some(),
        "the store can read nothing back and the fixture gives no app view: activation is unobservable"
    );
    expect_current(&c, "after activate", SECOND).await
}

/// What `resume` does after a crash: a freshly built store, given only the
/// journaled record, reads the stage back and activates it.
pub async fn a_fresh_instance_finishes_a_journaled_stage(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    let staged = step(
        "stage",
        c.store.stage(&Passphrase::from(FIRST), &run("fresh")).await,
    )?;
    let json = serde_json::to_string(&staged).map_err(|e| Violation(e.to_string()))?;
    let record: Staged = serde_json::from_str(&json).map_err(|e| Violation(e.to_string()))?;
    drop(c.store);
    let fresh = c.seeded.open().await;
    if c.caps.read_staged {
        let back = step(
            "read_staged (fresh instance)",
            fresh.read_staged(&record).await,
        )?;
        ensure!(
            back.same_as(&Passphrase::from(FIRST)),
            "a fresh instance read back another value"
        );
    }
    step("activate (fresh instance)", fresh.activate(&record).await)?;
    let c = Case {
        seeded: c.seeded,
        store: fresh,
        caps: c.caps,
    };
    expect_current(&c, "after activate from a fresh instance", FIRST).await
}

/// Errors never carry a passphrase: provoked failures and every record are checked
/// for the values the suite used.
pub async fn errors_carry_no_secret(f: &dyn StoreFixture) -> Outcome {
    let c = case(f).await;
    let staged = step(
        "stage",
        c.store.stage(&Passphrase::from(FIRST), &run("err")).await,
    )?;
    no_secret_in_staged(&staged)?;
    step("discard", c.store.discard(&staged).await)?;
    // Whether activating a discarded stage fails is the platform's business (the
    // engine never does it); if it fails, it must say why without the value.
    if let Err(e) = c.store.activate(&staged).await {
        no_secret_in(&e.chain(), "the error of activating a discarded stage")?;
    }
    if let Err(e) = c.store.read_staged(&staged).await {
        no_secret_in(&e.chain(), "the error of reading a discarded stage")?;
    }
    let mut forged = staged.clone();
    forged.version = format!("{}-forged", forged.version);
    forged.extra = serde_json::Value::Null;
    if let Err(e) = c.store.activate(&forged).await {
        no_secret_in(&e.chain(), "the error of activating a forged record")?;
    }
    if let Some(hint) = c.store.activate_hint(&staged) {
        no_secret_in(&hint, "the manual activation hint")?;
    }
    Ok(())
}

/// One test per check of the store suite, in a module `store_suite` whose
/// `tests()` lists them for [`main!`](crate::main) (`suites: [store_suite]`).
///
/// `$fixture` is an expression evaluating to a future of `Option<F>` with
/// `F: StoreFixture` (evaluated once per check, in a two-worker runtime).
#[macro_export]
macro_rules! store_suite {
    ($fixture:expr) => {
        pub(crate) mod store_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_suite!(@checks $fixture;
                preflight_is_read_only,
                read_current_returns_the_current_value,
                stage_is_invisible_until_activate,
                read_staged_returns_the_staged_value,
                stage_is_idempotent_per_run,
                discard_undoes_a_stage,
                activate_makes_it_current,
                a_fresh_instance_finishes_a_journaled_stage,
                errors_carry_no_secret,
            );
        }
    };
    (@checks $fixture:expr; $($check:ident),+ $(,)?) => {
        $(
            async fn $check() {
                let Some(fixture) = $fixture.await else { return };
                $crate::store::$check(&fixture)
                    .await
                    .unwrap_or_else(|v| panic!("store suite, {}: {v}", stringify!($check)));
            }
        )+

        /// Every check, for [`vsync_orchestrate_testkit::main!`].
        pub(crate) fn tests() -> ::std::vec::Vec<$crate::harness::Test> {
            ::std::vec![$(
                $crate::harness::Test::new(
                    $crate::harness::test_name(module_path!(), stringify!($check)),
                    $crate::harness::Runtime::MultiThread(2),
                    $check,
                )
            ),+]
        }
    };
}
