//! Reading a plan: a bounded read, UTF-8 with a place, TOML, then validation. Every
//! refusal is a [`PlanError`] whose problems carry file:line:column.

use super::model::Plan;
use super::problem::Problem;
use super::validate;
use std::path::{Path, PathBuf};

/// A plan read from disk, validated, with what validation had to say.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub path: PathBuf,
    pub source: String,
    pub plan: Plan,
    pub warnings: Vec<Problem>,
}

/// The largest plan `load` reads (1 MiB): plans are a few kilobytes, and a path that
/// names a log, a disk image or `/dev/zero` must not be read whole into memory.
pub const MAX_PLAN_BYTES: usize = 1 << 20;

/// Why a plan was refused, as a class: what was wrong with the file as a whole, or
/// that its content is not a valid plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanErrorKind {
    /// It could not be read: missing, a directory, no permission.
    Unreadable,
    /// Larger than [`MAX_PLAN_BYTES`].
    TooLarge,
    /// Not UTF-8 text (binary data, UTF-16, Latin-1).
    NotText,
    /// TOML that does not parse, or a plan that does not validate: every problem
    /// carries file:line:column.
    Invalid,
}

/// Why a plan was refused: every problem, each with file:line:column where known
/// (always, for `Invalid` and `NotText`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct PlanError {
    pub kind: PlanErrorKind,
    pub problems: Vec<Problem>,
}

impl PlanError {
    fn one(kind: PlanErrorKind, path: &Path, at: Option<(usize, usize)>, why: String) -> Self {
        PlanError {
            kind,
            problems: vec![Problem::error(path, at, why)],
        }
    }
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn load(path: &Path) -> Result<LoadedPlan, PlanError> {
    let bytes = read_bounded(path)?;
    parse_bytes(path, &bytes)
}

/// At most `MAX_PLAN_BYTES + 1` bytes of `path`, whatever it is (a FIFO or a device
/// has no length to check first).
fn read_bounded(path: &Path) -> Result<Vec<u8>, PlanError> {
    use std::io::Read;
    let unreadable = |why: String| {
        PlanError::one(
            PlanErrorKind::Unreadable,
            path,
            None,
            format!("cannot read the plan: {why}"),
        )
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let meta = file.metadata().map_err(|e| unreadable(e.to_string()))?;
    if meta.is_dir() {
        return Err(unreadable("it is a directory, not a plan file".into()));
    }
    if meta.is_file() && meta.len() > MAX_PLAN_BYTES as u64 {
        return Err(too_large(path, Some(meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PLAN_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(bytes)
}

fn too_large(path: &Path, len: Option<u64>) -> PlanError {
    let size = match len {
        Some(n) => format!("{n} bytes"),
        None => format!("more than {MAX_PLAN_BYTES} bytes"),
    };
    PlanError::one(
        PlanErrorKind::TooLarge,
        path,
        None,
        format!("the plan is {size}; a plan is at most {MAX_PLAN_BYTES} bytes (1 MiB) of TOML"),
    )
}

/// A plan from the bytes of a file: the size limit, UTF-8 (a refusal names the
/// first byte that is not), then [`parse`]. `load` and `validate` go through here.
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<LoadedPlan, PlanError> {
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(too_large(path, None));
    }
    let source = std::str::from_utf8(bytes).map_err(|e| not_text(path, bytes, e))?;
    parse(path, source)
}

fn not_text(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> PlanError {
    let good = e.valid_up_to();
    let before = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
    let at = super::spans::Lines::new(before).at(good);
    let why = if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        "the plan is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8"
            .to_owned()
    } else {
        let head = &bytes[..bytes.len().min(8192)];
        let binary = head.contains(&0) || bytes.starts_with(&[0x1f, 0x8b]);
        format!(
            "the plan is not UTF-8 text{}: byte 0x{:02X} cannot start or continue a UTF-8 character",
            if binary { " (it looks like binary data)" } else { "" },
            bytes[good]
        )
    };
    PlanError::one(PlanErrorKind::NotText, path, Some(at), why)
}

/// Every problem is reported (sorted by place), not only the first.
pub fn parse(path: &Path, source: &str) -> Result<LoadedPlan, PlanError> {
    let (plan, warnings) = validate::check(path, source).map_err(|problems| PlanError {
        kind: PlanErrorKind::Invalid,
        problems,
    })?;
    Ok(LoadedPlan {
        path: path.to_owned(),
        source: source.to_owned(),
        plan,
        warnings,
    })
}
