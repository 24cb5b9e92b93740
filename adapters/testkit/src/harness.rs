//! The test binary of a file that runs a suite: a `harness = false` target whose
//! `main` ([`main!`](crate::main)) runs the file's suite checks and tests as
//! libtest-mimic trials, with libtest's command line and output.
//!
//! What it adds over `#[tokio::test]`: a test that skips for want of its service
//! ([`crate::service::skip`], under it [`crate::service::env_or_skip`]) is reported
//! `ignored (<why>)` and counted as ignored in the summary, instead of `ok`. Under
//! `CI=true` the skip is still a panic, so the test fails.
//!
//! Each test runs on a thread of its own named after it (so
//! [`crate::service::current_test`] names it), in a fresh runtime built as
//! `#[tokio::test]` builds it: current-thread for the file's own tests, two workers
//! for the suite checks, as before.
//!
//! A `harness = false` target never runs a `#[test]` or `#[tokio::test]` function: it
//! is compiled without `--test`, so they are dropped without a word. Its tests are
//! plain `async fn`s listed in `main!`; `tests/harness_targets.rs` fails on a
//! `#[test]` left in such a file.

use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

type Body = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The runtime a test runs in, as `#[tokio::test]` would build it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `#[tokio::test]`.
    CurrentThread,
    /// `#[tokio::test(flavor = "multi_thread", worker_threads = N)]`.
    MultiThread(usize),
}

/// One test of the binary: a name (what libtest would call it) and an `async fn`.
pub struct Test {
    name: String,
    runtime: Runtime,
    body: Body,
}

impl Test {
    pub fn new<F, Fut>(name: impl Into<String>, runtime: Runtime, body: F) -> Test
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Test {
            name: name.into(),
            runtime,
            body: Box::new(move || Box::pin(body())),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the test where it is: `Ok(None)` passed, `Ok(Some(why))` skipped,
    /// `Err(message)` failed (a panic).
    pub fn run(self) -> Result<Option<String>, String> {
        let Test {
            name,
            runtime,
            body,
        } = self;
        let watch = crate::service::Watch::new(&name);
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let rt = match runtime {
                    Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
                    Runtime::MultiThread(workers) => {
                        let mut b = tokio::runtime::Builder::new_multi_thread();
                        b.worker_threads(workers).thread_name(name);
                        b
                    }
                }
                .enable_all()
                .build()
                .expect("building the test's tokio runtime");
                rt.block_on(body());
            })
            .map_err(|e| format!("spawning the test's thread: {e}"))?;
        match thread.join() {
            Ok(()) => Ok(watch.finish()),
            Err(panic) => Err(panic_message(&*panic)),
        }
    }

    fn trial(self) -> Trial {
        let name = self.name.clone();
        Trial::ignorable_test(name, move || match self.run() {
            Ok(None) => Ok(Completion::Completed),
            Ok(Some(why)) => Ok(Completion::ignored_with(why)),
            Err(msg) => Err(Failed::from(msg)),
        })
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "the test panicked".to_owned()
    }
}

/// A test's name as libtest gives it: the module path without the crate, then the
/// function.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, path)) => format!("{path}::{function}"),
        None => function.to_owned(),
    }
}

/// The `main` of a `harness = false` test target: runs `tests` with libtest's
/// command line (filters, `--list`, `--ignored`, `--test-threads`, …).
pub fn run(tests: Vec<Test>) -> std::process::ExitCode {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, tests.into_iter().map(Test::trial).collect()).exit_code()
}

/// The `main` of a `harness = false` test target that runs suites: the checks of
/// each suite module this file defined (`store_suite!`, `restarter_suite!`), then
/// the file's own tests, plain `async fn`s (no `#[tokio::test]`) each run as
/// `#[tokio::test]` runs it.
///
/// ```text
/// vsync_orchestrate_testkit::store_suite!(moto());
///
/// async fn json_key_replaces_only_its_member() { /* … */ }
///
/// vsync_orchestrate_testkit::main! {
///     suites: [store_suite],
///     tests: [json_key_replaces_only_its_member],
/// }
/// ```
///
/// The target needs `harness = false` in its crate's `Cargo.toml`:
/// `[[test]] name = "<file stem>" harness = false`.
#[macro_export]
macro_rules! main {
    (
        suites: [$($($suite:ident)::+),* $(,)?]
        $(, tests: [$($($test:ident)::+),* $(,)?])?
        $(,)?
    ) => {
        // Built by libtest (no `harness = false`), the file would run none of its
        // tests: this one, dropped from a `harness = false` build, says so.
        #[test]
        fn main_needs_harness_false() {
            panic!("this file's [[test]] target needs `harness = false` in Cargo.toml: libtest runs none of its tests");
        }

        fn main() -> ::std::process::ExitCode {
            #[allow(unused_mut)]
            let mut tests: ::std::vec::Vec<$crate::harness::Test> = ::std::vec::Vec::new();
            $( tests.extend($($suite::)+tests()); )*
            $($(
                tests.push($crate::harness::Test::new(
                    [$(stringify!($test)),+].join("::"),
                    $crate::harness::Runtime::CurrentThread,
                    $($test)::+,
                ));
            )*)?
            $crate::harness::run(tests)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_libtests() {
        assert_eq!(
            test_name("store::sensitive::store_suite", "preflight_is_read_only"),
            "sensitive::store_suite::preflight_is_read_only"
        );
        assert_eq!(test_name("ecs", "wait_ends_done"), "wait_ends_done");
    }

    #[test]
    fn a_test_runs_on_a_thread_named_after_it() {
        for runtime in [Runtime::CurrentThread, Runtime::MultiThread(2)] {
            let t = Test::new("harness::named", runtime, || async {
                assert_eq!(crate::service::current_test(), "harness::named");
                tokio::task::yield_now().await;
            });
            assert_eq!(t.run(), Ok(None));
        }
    }

    #[test]
    fn a_panic_fails_with_its_message() {
        let t = Test::new("harness::panics", Runtime::CurrentThread, || async {
            panic!("the message");
        });
        assert_eq!(t.run(), Err("the message".to_owned()));
    }

    #[test]
    fn a_skip_is_ignored_with_its_reason_outside_ci_and_fails_in_ci() {
        let t = Test::new("harness::skips", Runtime::MultiThread(2), || async {
            let got = tokio::spawn(async {
                crate::service::env_or_skip(
                    &crate::service::current_test(),
                    &["VSYNC_TEST_MOTO_SURELY_UNSET"],
                )
            })
            .await
            .unwrap();
            assert!(got.is_none());
        });
        let r = t.run();
        if crate::service::in_ci() {
            let msg = r.unwrap_err();
            assert!(msg.contains("VSYNC_TEST_MOTO_SURELY_UNSET"), "{msg}");
        } else {
            assert_eq!(
                r,
                Ok(Some(
                    "VSYNC_TEST_MOTO_SURELY_UNSET not set; start moto: .ci/services/10-moto.sh"
                        .to_owned()
                ))
            );
        }
    }
}
