//! Validation: fast, no network, for `validate` in CI on plan repositories. The
//! document is parsed once with its spans; `structure` reads each section into its
//! type and says in the plan's words what does not fit, `rules` are the checks a
//! well-typed plan must still pass. Every problem is reported, by place.

use super::model::Plan;
use super::spans::{Doc, Lines};
use super::{rules, structure};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line and column.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

/// At most this many bytes of one message: values are quoted in messages, and a plan
/// may hold a value of a megabyte.
pub const MAX_MESSAGE: usize = 1000;
/// At most this many problems per plan; the rest are counted in one last line.
pub const MAX_PROBLEMS: usize = 40;

impl Problem {
    pub fn error(file: &Path, at: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            file: file.to_owned(),
            at,
            message: bounded(message.into()),
        }
    }
}

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (cut)");
    }
    message
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.at {
            Some((l, c)) => write!(
                f,
                "{}:{l}:{c}: {what}: {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{}: {what}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem of the plan in `source`, in the order of the file: the plan and
/// its warnings when none is an error, else the errors. A syntax error stops the
/// reading (nothing after it has a meaning yet); past that, every section is read
/// and checked on its own, so one mistake does not hide the next.
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
    let mut report = Report {
        doc: &doc,
        found: Vec::new(),
    };
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

/// What the checks found so far, each with its place; [`Report::finish`] orders
/// and bounds them.
pub(super) struct Report<'d> {
    pub(super) doc: &'d Doc<'d>,
    found: Vec<(Severity, (usize, usize), String)>,
}

impl Report<'_> {
    pub(super) fn error(&mut self, at: (usize, usize), msg: impl Into<String>) {
        self.found.push((Severity::Error, at, msg.into()));
    }

    pub(super) fn warn(&mut self, at: (usize, usize), msg: impl Into<String>) {
        self.found.push((Severity::Warning, at, msg.into()));
    }

    /// Sorted by place (what shares a place keeps the order it was found in); past
    /// `MAX_PROBLEMS`, errors are kept before warnings and the rest are counted in
    /// one last line.
    fn finish(mut self, file: &Path) -> Vec<Problem> {
        let problem = |(severity, at, message): (Severity, (usize, usize), String)| Problem {
            severity,
            file: file.to_owned(),
            at: Some(at),
            message: bounded(message),
        };
        if self.found.len() <= MAX_PROBLEMS {
            self.found.sort_by_key(|(_, at, _)| *at);
            return self.found.into_iter().map(problem).collect();
        }
        self.found
            .sort_by_key(|(s, at, _)| (*s == Severity::Warning, *at));
        let rest = self.found.split_off(MAX_PROBLEMS);
        let more_errors = rest.iter().filter(|p| p.0 == Severity::Error).count();
        let more_warnings = rest.len() - more_errors;
        self.found.sort_by_key(|(_, at, _)| *at);
        let mut out: Vec<Problem> = self.found.into_iter().map(problem).collect();
        out.push(Problem {
            severity: if more_errors > 0 {
                Severity::Error
            } else {
                Severity::Warning
            },
            file: file.to_owned(),
            at: Some((1, 1)),
            message: format!(
                "{more_errors} more error(s) and {more_warnings} more warning(s) not shown (at most {MAX_PROBLEMS} per plan)"
            ),
        });
        out
    }
}

pub(super) fn too_long(what: &str, given: &str, max: &str) -> String {
    format!("{what}: {given} is absurdly long: at most {max}")
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like \"90s\", \"5m\" or \"80d\": {e}"))
}

/// Longer than this is not a timeout or a polling interval but a hang.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
pub(super) const MAX_WAIT_SHOWN: &str = "\"24h\"";
/// A rotation due less often than every ten years would never be due.
pub const MAX_MIN_AGE: Duration = Duration::from_secs(3650 * 24 * 3600);
pub(super) const MAX_MIN_AGE_SHOWN: &str = "\"3650d\"";
/// PBKDF2 iterations: vsync uses 600000; far more makes every derivation take minutes.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Consecutive fresh answers per health URL.
pub const MAX_SAMPLES: u32 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

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
