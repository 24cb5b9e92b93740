//! What validation reports and the limits it holds a plan to: a problem with its
//! place, and the collector every check writes to. Its own module so the checks
//! (`structure`, `rules`) and their driver (`validate`) all lean on it and never
//! on each other.

use super::spans::Doc;
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
/// What the checks found so far, each with its place; [`Report::finish`] orders
/// and bounds them.
pub(super) struct Report<'d> {
    pub(super) doc: &'d Doc<'d>,
    found: Vec<(Severity, (usize, usize), String)>,
}

impl<'d> Report<'d> {
    pub(super) fn new(doc: &'d Doc<'d>) -> Report<'d> {
        Report {
            doc,
            found: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, at: (usize, usize), msg: impl Into<String>) {
        self.found.push((Severity::Error, at, msg.into()));
    }

    pub(super) fn warn(&mut self, at: (usize, usize), msg: impl Into<String>) {
        self.found.push((Severity::Warning, at, msg.into()));
    }

    /// Sorted by place (what shares a place keeps the order it was found in); past
    /// `MAX_PROBLEMS`, errors are kept before warnings and the rest are counted in
    /// one last line.
    pub(super) fn finish(mut self, file: &Path) -> Vec<Problem> {
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

/// Why a plan's duration does not parse: the text, and humantime's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a duration like \"90s\", \"5m\" or \"80d\": {why}")]
pub struct DurationError {
    pub given: String,
    pub why: String,
}

pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(s).map_err(|e| DurationError {
        given: s.to_owned(),
        why: e.to_string(),
    })
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
