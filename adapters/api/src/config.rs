//! What an adapter's plan table implements so the root can name it in one line.
//!
//! The plan deserializes each `[[store]]` / `[[restart]]` table straight into the
//! adapter's own config type (serde, `deny_unknown_fields`), so the keys, their
//! defaults and their checks live in one place: the adapter crate. The root only
//! asks the three questions below.

use crate::{BuildContext, Restarter, Result, SecretStore};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How bad a static finding is: an error stops `validate`, a warning is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One result of an adapter's static checks, with the key it is about so the plan
/// loader can point at that key's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The key in the adapter's table the finding is about, where there is one.
    pub key: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn error(key: Option<&str>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn warning(key: Option<&str>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// A `[[store]]` table.
#[async_trait::async_trait]
pub trait StoreConfig: Send + Sync + fmt::Debug {
    /// Static checks that need no network and no credentials (`validate` runs them).
    fn check(&self) -> Vec<Finding> {
        Vec::new()
    }

    /// A canonical name of what this table writes, e.g.
    /// `aws_secrets_manager:us-east-1:prod/x`: the same secret spelt two ways gives
    /// the same identity.
    fn identity(&self) -> String;

    /// Every single thing the table writes (one per host for multi-host stores), so
    /// two tables that overlap in one host are refused as well. Defaults to the
    /// identity.
    fn targets(&self) -> Vec<String> {
        vec![self.identity()]
    }

    /// Builds the live store. Must not need the network: connections are opened in
    /// `preflight`, so `validate` and the plan tests can build offline.
    async fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn SecretStore>>;
}

/// A `[[restart]]` table.
#[async_trait::async_trait]
pub trait RestarterConfig: Send + Sync + fmt::Debug {
    fn check(&self) -> Vec<Finding> {
        Vec::new()
    }

    /// See [`StoreConfig::identity`].
    fn identity(&self) -> String;

    /// See [`StoreConfig::targets`].
    fn targets(&self) -> Vec<String> {
        vec![self.identity()]
    }

    /// How long the engine waits for this restarter's rollout (its `timeout` key).
    fn timeout(&self) -> Duration;

    /// Builds the live restarter; offline, as [`StoreConfig::build`].
    async fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Restarter>>;
}

/// A Unix file mode written in a plan as an octal string (`"0600"`).
///
/// An integer is refused rather than guessed at: `mode = 600` in TOML is decimal
/// 600 (octal 1130), which is not what anybody who wrote it meant.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(u32);

impl FileMode {
    /// `0600`: the owner reads and writes, nobody else.
    pub const OWNER_ONLY: FileMode = FileMode(0o600);

    /// Permission bits only (setuid, setgid and sticky are refused when parsing).
    pub fn new(bits: u32) -> Option<FileMode> {
        (bits <= 0o777).then_some(FileMode(bits))
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// The static check every passphrase file shares: others must not read it.
    pub fn check(self, key: &str) -> Option<Finding> {
        (self.0 & 0o007 != 0).then(|| {
            Finding::error(
                Some(key),
                format!(
                    "mode {self} gives others access to the passphrase; use \"0600\" or \"0640\""
                ),
            )
        })
    }
}

impl Default for FileMode {
    fn default() -> Self {
        FileMode::OWNER_ONLY
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl fmt::Debug for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileMode({self})")
    }
}

impl std::str::FromStr for FileMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        u32::from_str_radix(s, 8)
            .ok()
            .and_then(FileMode::new)
            .ok_or_else(|| format!("mode {s:?} is not an octal file mode like \"0600\""))
    }
}

/// A mode is written `"0600"`, `"600"` or as a number; the schema says so.
impl schemars::JsonSchema for FileMode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FileMode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An octal file mode such as \"0600\" (owner only) or \"0640\"",
            "type": ["string", "integer"],
            "pattern": "^0?[0-7]{3}$"
        })
    }
}

impl serde::Serialize for FileMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal file mode as a string, like \"0600\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<FileMode, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<FileMode, E> {
                Err(E::custom(format!(
                    "mode {v} is a number; write the mode as an octal string, like \"0600\""
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<FileMode, E> {
                self.visit_i64(v as i64)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        mode: FileMode,
    }

    fn parse(v: &str) -> std::result::Result<FileMode, String> {
        serde_json::from_str::<T>(&format!("{{\"mode\": {v}}}"))
            .map(|t| t.mode)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn modes_are_octal_strings() {
        assert_eq!(parse("\"0640\"").unwrap().bits(), 0o640);
        assert_eq!(parse("\"600\"").unwrap(), FileMode::OWNER_ONLY);
        assert!(parse("600").unwrap_err().contains("octal string"));
        assert!(parse("\"0689\"")
            .unwrap_err()
            .contains("not an octal file mode"));
        assert!(
            parse("\"4755\"").is_err(),
            "setuid is not a passphrase file mode"
        );
        assert_eq!(FileMode::OWNER_ONLY.to_string(), "0600");
    }

    #[test]
    fn others_may_not_read() {
        assert!(FileMode::new(0o640).unwrap().check("mode").is_none());
        let f = FileMode::new(0o644).unwrap().check("mode").unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert!(f.message.contains("0644"), "{}", f.message);
    }
}
