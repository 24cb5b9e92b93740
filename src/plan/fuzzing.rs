//! The entry point of the `plan_load` cargo-fuzz target (`fuzz/`) and of its
//! regression tests: arbitrary bytes through the same path `validate` takes
//! ([`super::load::parse_bytes`]: size limit, UTF-8, TOML, the model, the static checks).
//! Returns normally for every input — a refusal is a correct answer — and panics
//! only when a property fails, so libFuzzer reports exactly the inputs worth a look.
//!
//! Not an API: hidden from the docs and free to change with the target.

use super::load::{parse_bytes, PlanErrorKind, MAX_PLAN_BYTES};
use super::problem::Severity;
use std::path::Path;

/// The name every fuzzed plan is reported under.
pub const PATH: &str = "fuzz.toml";

/// Properties: never a panic; a refusal has at least one problem, every problem is
/// an error naming the file with a message; a refusal of the content (not text, not
/// a valid plan) says where (line and column inside the input); an accepted plan
/// has a store, and loading the same bytes again gives the same answer.
pub fn plan_load(data: &[u8]) {
    let path = Path::new(PATH);
    match parse_bytes(path, data) {
        Err(e) => {
            assert!(!e.problems.is_empty(), "a refusal without a problem");
            let lines = data.split(|b| *b == b'\n').count();
            for p in &e.problems {
                assert_eq!(p.severity, Severity::Error, "{p}");
                assert_eq!(p.file, path, "{p}");
                assert!(
                    !p.message.trim().is_empty(),
                    "a problem without a reason: {p:?} for {:?}",
                    String::from_utf8_lossy(data)
                );
                let shown = p.to_string();
                assert!(shown.starts_with(PATH), "{shown}");
                match e.kind {
                    PlanErrorKind::Invalid | PlanErrorKind::NotText => {
                        let (line, col) = p.at.unwrap_or_else(|| panic!("no location: {p}"));
                        assert!(line >= 1 && col >= 1, "{p}");
                        assert!(line <= lines.max(1), "line {line} of {lines}: {p}");
                        assert!(shown.starts_with(&format!("{PATH}:{line}:{col}: error: ")));
                    }
                    PlanErrorKind::TooLarge => assert!(data.len() > MAX_PLAN_BYTES),
                    PlanErrorKind::Unreadable => panic!("bytes are always readable: {p}"),
                }
            }
        }
        Ok(loaded) => {
            assert!(!loaded.plan.stores.is_empty(), "a plan without a store");
            assert!(loaded
                .warnings
                .iter()
                .all(|w| w.severity == Severity::Warning));
            assert_eq!(loaded.source.as_bytes(), data);
            let again = parse_bytes(path, data).expect("the same bytes load twice");
            assert_eq!(again.warnings.len(), loaded.warnings.len());
        }
    }
}
