//! The behaviour every [`SecretStore`] must show, as plain async checks.
//!
//! Each adapter's tests build a store against its real service or stateful fake,
//! seed it with a known current value, and call [`check_store`]. One suite for all
//! stores (the way opendal runs one behaviour suite against every service) keeps
//! the engine's assumptions true on every platform.

use crate::{ErrorKind, Passphrase, RunId, SecretStore};

/// Where the suite found a store breaking the contract.
#[derive(Debug)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Violation(format!($($msg)+)));
        }
    };
}

fn step<T>(what: &str, r: crate::Result<T>) -> Result<T, Violation> {
    r.map_err(|e| Violation(format!("{what} failed: {}", e.chain())))
}

/// What the suite needs to know about the store under test.
pub struct StoreCheck {
    /// The value the store holds as current before the suite starts.
    pub initial: Passphrase,
    /// Whether the platform can read values back (`false` for write-only stores).
    pub readable: bool,
    /// A prefix that makes run ids unique to this test run.
    pub run_prefix: String,
}

/// Runs the whole contract against `store`. On success the store's current value
/// is the last value the suite activated, returned so callers can assert on the
/// platform's own view too.
pub async fn check_store(
    store: &dyn SecretStore,
    check: &StoreCheck,
) -> Result<Passphrase, Violation> {
    let run1 = RunId(format!("{}-one", check.run_prefix));
    let run2 = RunId(format!("{}-two", check.run_prefix));
    let first = Passphrase::from("conformance-first-7Yq2NnQ8vB3kLp0Z");
    let second = Passphrase::from("conformance-second-Hd83JxQm1Pz6Wc4T");

    step("preflight", store.preflight().await)?;
    let current = |what: &'static str| async move {
        let got = step(what, store.read_current().await)?;
        Ok::<_, Violation>(got)
    };
    if check.readable {
        let got = current("read_current before stage").await?;
        ensure!(
            got.as_ref().is_some_and(|p| p.same_as(&check.initial)),
            "read_current before any stage did not return the seeded value"
        );
    }

    // Stage is invisible to readers of the current version.
    let staged = step("stage", store.stage(&first, &run1).await)?;
    ensure!(
        !format!("{staged:?}").contains(first.expose()),
        "Staged exposes the value"
    );
    if check.readable {
        let got = current("read_current after stage").await?;
        ensure!(
            got.as_ref().is_some_and(|p| p.same_as(&check.initial)),
            "a staged value became visible as current before activate"
        );
    }
    let back = step("read_staged", store.read_staged(&staged).await)?;
    ensure!(
        back.same_as(&first),
        "read_staged did not return the staged value"
    );

    // Stage is idempotent per run id.
    let again = step("stage (repeat)", store.stage(&first, &run1).await)?;
    ensure!(
        again.version == staged.version,
        "staging twice in one run created a second version ({} then {})",
        staged.version,
        again.version
    );

    // Discard undoes a stage, and is itself idempotent.
    step("discard", store.discard(&staged).await)?;
    step("discard (repeat)", store.discard(&staged).await)?;
    if check.readable {
        let got = current("read_current after discard").await?;
        ensure!(
            got.as_ref().is_some_and(|p| p.same_as(&check.initial)),
            "discard changed the current value"
        );
    }
    match store.read_staged(&staged).await {
        Ok(p) => ensure!(
            !p.same_as(&first),
            "read_staged still returns a discarded value"
        ),
        Err(e) => {
            ensure!(
                !e.chain().contains(first.expose()),
                "an error message contains the passphrase"
            );
            ensure!(
                matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict),
                "read_staged after discard should be not found or conflict, was {}",
                e.kind()
            );
        }
    }

    // Activate makes it current, and activating twice is success.
    let staged2 = step("stage (second run)", store.stage(&second, &run2).await)?;
    step("activate", store.activate(&staged2).await)?;
    step("activate (repeat)", store.activate(&staged2).await)?;
    step("tidy", store.tidy(&staged2).await)?;
    step("tidy (repeat)", store.tidy(&staged2).await)?;
    if check.readable {
        let got = current("read_current after activate").await?;
        ensure!(
            got.as_ref().is_some_and(|p| p.same_as(&second)),
            "activate did not make the staged value current"
        );
    }
    Ok(second)
}
