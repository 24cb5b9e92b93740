//! The declarative plan: TOML model, loading with positioned errors, validation.

mod model;
mod validate;

pub use model::*;
pub use validate::{parse_duration, Problem, Severity};

use std::path::{Path, PathBuf};

/// A plan read from disk, validated, with what validation had to say.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub path: PathBuf,
    pub source: String,
    pub plan: Plan,
    pub warnings: Vec<Problem>,
}

/// Why a plan was refused: every problem, each with file:line:column where known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct PlanError {
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn load(path: &Path) -> Result<LoadedPlan, PlanError> {
    let source = std::fs::read_to_string(path).map_err(|e| PlanError {
        problems: vec![Problem::error(
            path,
            None,
            format!("cannot read the plan: {e}"),
        )],
    })?;
    parse(path, &source)
}

pub fn parse(path: &Path, source: &str) -> Result<LoadedPlan, PlanError> {
    let plan: Plan = toml::from_str(source).map_err(|e| PlanError {
        problems: vec![validate::from_toml_error(path, source, &e)],
    })?;
    let problems = validate::check(path, source, &plan);
    let (errors, warnings): (Vec<_>, Vec<_>) = problems
        .into_iter()
        .partition(|p| p.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(PlanError { problems: errors });
    }
    Ok(LoadedPlan {
        path: path.to_owned(),
        source: source.to_owned(),
        plan,
        warnings,
    })
}
