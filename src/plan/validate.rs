//! Validation: fast, no network, for `validate` in CI on plan repositories. The
//! document is parsed once with its spans; `structure` reads each section into its
//! type and says in the plan's words what does not fit, `rules` are the checks a
//! well-typed plan must still pass. Every problem is reported, by place.

use super::model::Plan;
use super::problem::{Problem, Report, Severity};
use super::spans::{Doc, Lines};
use super::{rules, structure};
use std::path::Path;

pub(super) fn check(file: &Path, source: &str) -> Result<(Plan, Vec<Problem>), Vec<Problem>> {
    let lines = Lines::new(source);
    let parsed = match toml_edit::ImDocument::parse(source) {
        Ok(d) => d,
        Err(e) => {
            let at = e.span().map(|s| lines.at(s.start)).unwrap_or((1, 1));
            return Err(vec![Problem::error(file, Some(at), syntax_message(&e))]);
        }
    };
    let doc = Doc {
        root: parsed.as_table(),
        lines,
    };
    let mut report = Report::new(&doc);
    let parts = structure::read(&mut report);
    rules::run(&mut report, &parts);
    let problems = report.finish(file);
    if problems.iter().any(|p| p.severity == Severity::Error) {
        return Err(problems
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect());
    }
    let plan = parts
        .into_plan()
        .expect("a plan with no error has every section it needs");
    Ok((plan, problems))
}

/// toml puts what it expected on a line of its own: one line per problem.
fn syntax_message(e: &toml_edit::TomlError) -> String {
    let msg = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    // toml gives no message for some errors (`key =` at the end of the file).
    if msg.is_empty() {
        "invalid TOML here: a value is missing or the document ends too early".to_owned()
    } else {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::problem::MAX_PROBLEMS;

    const GOOD: &str = "env = \"prod\"\n[vault]\ndir = \"/srv/v\"\nprefix = \"app/prod/\"\nsalt = { env = \"S\" }\n[[store]]\ntype = \"file\"\npath = \"/etc/app/passphrase\"\n";

    fn problems(source: &str) -> Vec<String> {
        match check(Path::new("p.toml"), source) {
            Ok((_, warnings)) => warnings.iter().map(|w| w.to_string()).collect(),
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_good_plan_reads_with_its_warnings() {
        let (plan, warnings) = check(Path::new("p.toml"), GOOD).unwrap();
        assert_eq!(plan.env, "prod");
        assert_eq!(plan.stores.len(), 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].message.starts_with("no [[restart]]"));
    }

    /// One mistake per section: each is reported, by place, though the first two
    /// keep their sections from being read.
    #[test]
    fn every_problem_in_the_order_of_the_file() {
        let src = GOOD
            .replace("env = \"prod\"", "env = \"prod\"\nstate_dir = \"rel\"")
            .replace(
                "prefix = \"app/prod/\"",
                "prefix = \"app/prod/\"\nbukcet = \"b\"",
            )
            + "[verify]\nsamples = \"3\"\n[[restart]]\ntype = \"k8s\"\n";
        let got = problems(&src);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[0].starts_with("p.toml:2:1: error: state_dir rel is relative"));
        assert!(got[1].starts_with("p.toml:6:1: error: unknown field `bukcet`"));
        assert!(got[1].ends_with("did you mean `bucket`?"), "{}", got[1]);
        assert!(got[2].starts_with(
            "p.toml:12:1: error: `verify.samples` must be a whole number, like 3; here it is the string \"3\""
        ));
        assert!(got[3].starts_with("p.toml:14:1: error: unknown variant `k8s`"));
        assert!(got[3].ends_with("did you mean `kubernetes`?"), "{}", got[3]);
    }

    #[test]
    fn type_errors_name_the_key_in_plain_words() {
        for (change, want) in [
            (
                ("prefix = \"app/prod/\"", "prefix = 7"),
                "p.toml:4:1: error: `vault.prefix` must be a string, like \"…\"; here it is the number 7",
            ),
            (
                ("salt = { env = \"S\" }", "salt = { env = \"S\" }\naudit = 1"),
                "p.toml:6:1: error: `vault.audit` must be true or false; here it is the number 1",
            ),
            (
                ("type = \"file\"", "type = \"file\"\nmode = [1]"),
                "p.toml:8:1: error: `mode` must be an octal file mode as a string, like \"0600\"; here it is a list",
            ),
            (
                ("[[store]]", "[store]"),
                "p.toml:6:1: error: `store` must be a list of tables: write each one as a [[store]] table, not a single [table]",
            ),
        ] {
            let got = problems(&GOOD.replace(change.0, change.1));
            assert!(got[0].starts_with(want), "{change:?}: {got:#?}");
            assert!(
                !got[0].contains("expected") && !got[0].contains("invalid type"),
                "{got:#?}"
            );
        }
    }

    #[test]
    fn a_passphrase_written_in_the_plan_is_never_repeated() {
        let got = problems(&GOOD.replace("[vault]", "passphrase = \"Zq8-correct-horse\"\n[vault]"));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].contains("`passphrase` must be a table"),
            "{}",
            got[0]
        );
        assert!(!got[0].contains("Zq8"), "{}", got[0]);
    }

    #[test]
    fn past_the_cap_errors_are_kept_before_warnings_and_the_rest_counted() {
        let mut src = GOOD.to_owned();
        for i in 0..MAX_PROBLEMS + 5 {
            src.push_str(&format!(
                "[[store]]\ntype = \"file\"\npath = \"/x/{i}\"\nmode = \"0644\"\n"
            ));
        }
        let got = check(Path::new("p.toml"), &src).unwrap_err();
        assert_eq!(got.len(), MAX_PROBLEMS + 1);
        let places: Vec<_> = got[..MAX_PROBLEMS].iter().map(|p| p.at.unwrap()).collect();
        let mut sorted = places.clone();
        sorted.sort();
        assert_eq!(places, sorted);
        assert!(got[MAX_PROBLEMS]
            .message
            .starts_with("5 more error(s) and 1 more warning(s)"));
    }
}
