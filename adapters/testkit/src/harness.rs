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
//! `#[tokio::test]` builds it: current-thread for the file's own tests unless the
//! entry in `main!` says otherwise (`#[multi_thread(N)]`, or `#[sync]` for a plain
//! `fn` that `#[test]` would have run with no runtime), two workers for the suite
//! checks.
//!
//! A `harness = false` target never runs a `#[test]` or `#[tokio::test]` function: it
//! is compiled without `--test`, so they are dropped without a word. Its tests are
//! plain `async fn`s listed in `main!`; `tests/harness_targets.rs` fails on a
//! `#[test]` left in such a file.

use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

type AsyncBody = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

enum Body {
    Async(Runtime, AsyncBody),
    /// A `#[test]` function: run on the test's thread, no runtime around it.
    Sync(Box<dyn FnOnce() + Send>),
}

/// The runtime a test runs in, as `#[tokio::test]` would build it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `#[tokio::test]`.
    CurrentThread,
    /// `#[tokio::test(flavor = "multi_thread", worker_threads = N)]`.
    MultiThread(usize),
}

/// One test of the binary: a name (what libtest would call it) and an `async fn`
/// with its runtime, or a plain `fn`.
pub struct Test {
    name: String,
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
            body: Body::Async(runtime, Box::new(move || Box::pin(body()))),
        }
    }

    /// A test that `#[test]` would have run: no runtime, the test's own thread.
    pub fn sync<F>(name: impl Into<String>, body: F) -> Test
    where
        F: FnOnce() + Send + 'static,
    {
        Test {
            name: name.into(),
            body: Body::Sync(Box::new(body)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the test where it is: `Ok(None)` passed, `Ok(Some(why))` skipped,
    /// `Err(message)` failed (a panic).
    pub fn run(self) -> Result<Option<String>, String> {
        let Test { name, body } = self;
        let watch = crate::service::Watch::new(&name);
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let (runtime, body) = match body {
                    Body::Sync(body) => return body(),
                    Body::Async(runtime, body) => (runtime, body),
                };
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

/// The `main` of a `harness = false` test target: the checks of each suite module
/// this file defined (`store_suite!`, `restarter_suite!`), then the file's own
/// tests, each run as the attribute it replaces would have run it.
///
/// ```text
/// vsync_orchestrate_testkit::store_suite!(moto());
///
/// async fn json_key_replaces_only_its_member() { /* … */ }
/// async fn many_at_once() { /* … */ }
/// fn a_plain_test() { /* … */ }
/// mod moto { pub(crate) async fn round_trip() { /* … */ } }
///
/// vsync_orchestrate_testkit::main! {
///     suites: [store_suite],
///     tests: [
///         json_key_replaces_only_its_member,   // was #[tokio::test]
///         #[multi_thread(4)] many_at_once,     // was #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
///         #[sync] a_plain_test,                // was #[test]
///         #[cfg(feature = "s3")] moto::round_trip,
///     ],
/// }
/// ```
///
/// Both lists are optional. The tests are plain functions, without `#[test]` or
/// `#[tokio::test]`: a `harness = false` target drops those unseen. A `#[cfg(…)]`
/// on an entry leaves it out where the function is cfg'd out.
///
/// The target needs `harness = false` in its crate's `Cargo.toml`:
/// `[[test]] name = "<file stem>" harness = false`.
#[macro_export]
macro_rules! main {
    (
        $(suites: [$($($suite:ident)::+),* $(,)?] $(,)?)?
        $(tests: [$($entry:tt)*] $(,)?)?
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
            $($( tests.extend($($suite::)+tests()); )*)?
            $( $crate::harness_tests!(tests; $($entry)*); )?
            $crate::harness::run(tests)
        }
    };
}

/// Pushes the `tests:` entries of [`main!`] onto `$tests` (a `Vec<Test>`), each
/// named by its path and run as its attributes say.
#[doc(hidden)]
#[macro_export]
macro_rules! harness_tests {
    ($tests:ident; $( $(#[$($attr:tt)*])* $($test:ident)::+ ),* $(,)?) => {
        $( $crate::__harness_test!($tests [] () [$([$($attr)*])*] $($test)::+); )*
    };
}

/// One entry of [`harness_tests!`]: reads its attributes one at a time into the
/// `cfg`s (`[#[cfg(…)] …]`) and the runtime (`()`, `(multi N)` or `(sync)`).
#[doc(hidden)]
#[macro_export]
macro_rules! __harness_test {
    ($tests:ident [$($cfg:tt)*] $rt:tt [[cfg($($c:tt)*)] $($rest:tt)*] $($test:ident)::+) => {
        $crate::__harness_test!($tests [$($cfg)* #[cfg($($c)*)]] $rt [$($rest)*] $($test)::+)
    };
    ($tests:ident $cfg:tt () [[multi_thread($n:literal)] $($rest:tt)*] $($test:ident)::+) => {
        $crate::__harness_test!($tests $cfg (multi $n) [$($rest)*] $($test)::+)
    };
    ($tests:ident $cfg:tt () [[sync] $($rest:tt)*] $($test:ident)::+) => {
        $crate::__harness_test!($tests $cfg (sync) [$($rest)*] $($test)::+)
    };
    ($tests:ident [$($cfg:tt)*] () [] $($test:ident)::+) => {
        $($cfg)*
        $tests.push($crate::harness::Test::new(
            [$(stringify!($test)),+].join("::"),
            $crate::harness::Runtime::CurrentThread,
            $($test)::+,
        ));
    };
    ($tests:ident [$($cfg:tt)*] (multi $n:literal) [] $($test:ident)::+) => {
        $($cfg)*
        $tests.push($crate::harness::Test::new(
            [$(stringify!($test)),+].join("::"),
            $crate::harness::Runtime::MultiThread($n),
            $($test)::+,
        ));
    };
    ($tests:ident [$($cfg:tt)*] (sync) [] $($test:ident)::+) => {
        $($cfg)*
        $tests.push($crate::harness::Test::sync(
            [$(stringify!($test)),+].join("::"),
            $($test)::+,
        ));
    };
    ($tests:ident $cfg:tt $rt:tt [[$($attr:tt)*] $($rest:tt)*] $($test:ident)::+) => {
        compile_error!(concat!(
            "vsync_orchestrate_testkit::main!: `#[", stringify!($($attr)*), "]` on `",
            stringify!($($test)::+),
            "`: an entry takes #[cfg(…)], and one of #[multi_thread(N)] or #[sync]"
        ));
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

    // The `tests:` entries of `main!`, as a file lists them.
    async fn on_current_thread() {
        let h = tokio::runtime::Handle::current();
        assert_eq!(
            h.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
        assert_eq!(crate::service::current_test(), "on_current_thread");
    }

    async fn on_three_workers() {
        let h = tokio::runtime::Handle::current();
        assert_eq!(
            h.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
        assert_eq!(h.metrics().num_workers(), 3);
    }

    fn with_no_runtime() {
        assert!(tokio::runtime::Handle::try_current().is_err());
        assert_eq!(crate::service::current_test(), "with_no_runtime");
    }

    mod nested {
        pub(crate) fn sync_in_a_module() {
            assert_eq!(crate::service::current_test(), "nested::sync_in_a_module");
        }
    }

    #[test]
    // Pushed one by one as `main!` pushes them, each under its own cfg.
    #[allow(clippy::vec_init_then_push)]
    fn main_entries_run_as_their_attributes_say_and_cfg_leaves_them_out() {
        let mut tests: Vec<Test> = Vec::new();
        crate::harness_tests!(tests;
            on_current_thread,
            #[multi_thread(3)] on_three_workers,
            #[sync] with_no_runtime,
            #[cfg(all())] #[sync] nested::sync_in_a_module,
            // Left out, so the name need not even resolve.
            #[cfg(any())] #[sync] no_such_function,
        );
        let names: Vec<&str> = tests.iter().map(Test::name).collect();
        assert_eq!(
            names,
            [
                "on_current_thread",
                "on_three_workers",
                "with_no_runtime",
                "nested::sync_in_a_module"
            ]
        );
        for t in tests {
            let name = t.name().to_owned();
            assert_eq!(t.run(), Ok(None), "{name}");
        }
    }

    #[test]
    fn a_sync_test_that_skips_is_ignored_and_one_that_panics_fails() {
        let t = Test::sync("harness::sync_skips", || {
            let got: Option<()> = crate::service::skip("harness::sync_skips", "no reason at all");
            assert!(got.is_none());
        });
        if crate::service::in_ci() {
            assert!(t.run().unwrap_err().contains("no reason at all"));
        } else {
            assert_eq!(t.run(), Ok(Some("no reason at all".to_owned())));
        }
        let t = Test::sync("harness::sync_panics", || panic!("sync message"));
        assert_eq!(t.run(), Err("sync message".to_owned()));
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
