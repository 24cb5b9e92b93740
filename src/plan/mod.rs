//! The declarative plan: TOML model, loading with positioned errors, validation.
//! This file only names the parts; each part takes what it needs from the file that
//! defines it.

pub mod escrow_key;
#[doc(hidden)]
pub mod fuzzing;
mod load;
mod model;
mod nearest;
mod problem;
mod rules;
mod spans;
mod structure;
mod validate;

pub mod schema;
pub use load::{load, parse, parse_bytes, LoadedPlan, PlanError, PlanErrorKind, MAX_PLAN_BYTES};
pub use model::*;
pub use nearest::{nearest, suggest_type};
pub use problem::{
    parse_duration, DurationError, Problem, Severity, MAX_ITERATIONS, MAX_MESSAGE, MAX_MIN_AGE,
    MAX_PROBLEMS, MAX_SAMPLES, MAX_WAIT,
};
