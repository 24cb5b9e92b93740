//! The generation cells: `latest.manifest` (CLI) and `latest.meta` (runtime libraries).

use super::storage::StorageError;
use serde_json::Value;

/// `{"gen":N,"prev_gen":M,"rotated_at":"…"}`; any field may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counter {
    pub gen: Option<u64>,
    pub prev_gen: Option<u64>,
    pub rotated_at: Option<String>,
}

/// Why a counter cell cannot be used as one. Rotation refuses on any of them
/// before writing (`BundleCorruptError`); readers for display treat them as 0.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("counter cell is not UTF-8")]
    NotUtf8,
    #[error("counter cell is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("counter cell is not a JSON object")]
    NotObject,
    /// A known field holds the wrong JSON type; `found` names what it holds.
    #[error("counter field {key} is not {} (it is {found})", expected(key))]
    Field {
        key: &'static str,
        found: &'static str,
    },
    /// Refused by the bounded read: a counter is a few bytes.
    #[error("{}", .0.message)]
    TooLarge(#[source] StorageError),
    /// The cell is at the last generation there is.
    #[error("gen {gen} is the largest there is and cannot be incremented")]
    Exhausted { gen: u64 },
}

fn expected(key: &str) -> &'static str {
    match key {
        "rotated_at" => "a string",
        _ => "a non-negative integer",
    }
}

/// What a JSON value is, for [`CounterError::Field`].
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a number",
        Value::Number(n) if n.is_i64() => "a negative number",
        Value::Number(_) => "a floating-point number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Counter {
    /// Strict parse with the CLI's rules (`docs/wire-format.md` §6.2): empty is `{}`,
    /// unknown keys dropped, anything else malformed is an error so rotate refuses
    /// before writing.
    pub fn parse(body: &[u8]) -> Result<Counter, CounterError> {
        let text = std::str::from_utf8(body).map_err(|_| CounterError::NotUtf8)?;
        if text.trim().is_empty() {
            return Ok(Counter::default());
        }
        let v: Value = serde_json::from_str(text).map_err(CounterError::NotJson)?;
        let obj = v.as_object().ok_or(CounterError::NotObject)?;
        let int = |key: &'static str| -> Result<Option<u64>, CounterError> {
            match obj.get(key) {
                None => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or(CounterError::Field {
                    key,
                    found: kind_of(v),
                }),
            }
        };
        let rotated_at = match obj.get("rotated_at") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(CounterError::Field {
                    key: "rotated_at",
                    found: kind_of(v),
                })
            }
        };
        Ok(Counter {
            gen: int("gen")?,
            prev_gen: int("prev_gen")?,
            rotated_at,
        })
    }

    /// Compact, keys in the order `gen`, `prev_gen`, `rotated_at`.
    pub fn to_json(&self) -> String {
        let mut parts = Vec::new();
        if let Some(g) = self.gen {
            parts.push(format!("\"gen\":{g}"));
        }
        if let Some(g) = self.prev_gen {
            parts.push(format!("\"prev_gen\":{g}"));
        }
        if let Some(r) = &self.rotated_at {
            parts.push(format!("\"rotated_at\":{}", Value::String(r.clone())));
        }
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_the_cli_shape() {
        let c = Counter::parse(
            br#"{"gen":4,"prev_gen":3,"rotated_at":"2026-05-23T11:42:07.498Z","x":1}"#,
        )
        .unwrap();
        assert_eq!(c.gen, Some(4));
        assert_eq!(
            c.to_json(),
            r#"{"gen":4,"prev_gen":3,"rotated_at":"2026-05-23T11:42:07.498Z"}"#
        );
        assert_eq!(Counter::parse(b"  ").unwrap(), Counter::default());
    }

    #[test]
    fn each_malformation_is_its_own_variant() {
        assert!(matches!(
            Counter::parse(b"\xff"),
            Err(CounterError::NotUtf8)
        ));
        assert!(matches!(
            Counter::parse(b"gen=4"),
            Err(CounterError::NotJson(_))
        ));
        assert!(matches!(
            Counter::parse(b"[1]"),
            Err(CounterError::NotObject)
        ));
        let e = Counter::parse(br#"{"gen":-1}"#).unwrap_err();
        assert!(
            matches!(
                e,
                CounterError::Field {
                    key: "gen",
                    found: "a negative number"
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "counter field gen is not a non-negative integer (it is a negative number)"
        );
        assert!(matches!(
            Counter::parse(br#"{"prev_gen":"4"}"#),
            Err(CounterError::Field {
                key: "prev_gen",
                found: "a string"
            })
        ));
        let e = Counter::parse(br#"{"rotated_at":4}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "counter field rotated_at is not a string (it is a number)"
        );
        assert!(matches!(
            Counter::parse(br#"{"gen":1.5}"#),
            Err(CounterError::Field {
                key: "gen",
                found: "a floating-point number"
            })
        ));
    }
}
