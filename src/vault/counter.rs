//! The generation cells: `latest.manifest` (CLI) and `latest.meta` (runtime libraries).

use serde_json::Value;

/// `{"gen":N,"prev_gen":M,"rotated_at":"…"}`; any field may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counter {
    pub gen: Option<u64>,
    pub prev_gen: Option<u64>,
    pub rotated_at: Option<String>,
}

impl Counter {
    /// Strict parse with the CLI's rules (`docs/wire-format.md` §6.2): empty is `{}`,
    /// unknown keys dropped, anything else malformed is an error so rotate refuses
    /// before writing.
    pub fn parse(body: &[u8]) -> Result<Counter, String> {
        let text =
            std::str::from_utf8(body).map_err(|_| "counter cell is not UTF-8".to_string())?;
        if text.trim().is_empty() {
            return Ok(Counter::default());
        }
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("counter cell is not JSON: {e}"))?;
        let obj = v.as_object().ok_or("counter cell is not a JSON object")?;
        let int = |k: &str| -> Result<Option<u64>, String> {
            match obj.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("counter field {k} is not a non-negative integer")),
            }
        };
        let rotated_at = match obj.get("rotated_at") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("counter field rotated_at is not a string".into()),
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
        assert!(Counter::parse(b"[1]").is_err());
        assert!(Counter::parse(br#"{"gen":-1}"#).is_err());
        assert!(Counter::parse(br#"{"gen":"4"}"#).is_err());
    }
}
