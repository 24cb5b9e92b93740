//! The plan file's model: every table is a struct that rejects unknown keys, and
//! every adapter table is a variant of a `type`-tagged enum (as vector does), so a
//! typo is an error with a position and a suggestion, never a silent default. The
//! adapter tables themselves are the adapter crates' own config types, named in
//! `src/adapters.rs`.

pub use crate::adapters::{RestartSpec, StoreSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use vsync_orchestrate_api::schemars::JsonSchema;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Environment name (`^[a-z][a-z0-9_-]*$`), as vsync spells it.
    pub env: String,
    pub vault: VaultSection,
    #[serde(default)]
    pub passphrase: PassphraseSection,
    #[serde(default, rename = "store")]
    pub stores: Vec<StoreSpec>,
    #[serde(default, rename = "restart")]
    pub restarts: Vec<RestartSpec>,
    #[serde(default)]
    pub verify: VerifySection,
    #[serde(default)]
    pub schedule: Option<ScheduleSection>,
    #[serde(default)]
    pub notify: Option<NotifySection>,
    /// A sealed copy of every new passphrase for the security team (off unless set).
    #[serde(default)]
    pub escrow: Option<EscrowSection>,
    /// Where journals live (default `$XDG_STATE_HOME/vsync-orchestrate`).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    /// S3 bucket; exactly one of `bucket` and `dir`.
    pub bucket: Option<String>,
    /// A local directory vault (single host, the demo).
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub prefix: String,
    pub region: Option<String>,
    /// S3-compatible endpoint (MinIO, R2, Ceph).
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    /// Path-style URLs; default true when `endpoint` is set.
    pub path_style: Option<bool>,
    /// `when_required` for S3-compatible stores that reject the SDK's default CRC32.
    pub checksum: Option<ChecksumMode>,
    #[serde(default)]
    pub layout: crate::vault::LayoutChoice,
    /// The salt string, where to read it, or `{ config = … }` for a VSYNC_CONFIG blob.
    pub salt: Option<ValueSource>,
    /// A `VSYNC_CONFIG` blob to take salt and iterations from.
    pub config: Option<ValueSource>,
    /// The vsync CLI's local config file (`~/.config/vsync/<repo>/env_<env>`).
    pub cli_config: Option<PathBuf>,
    pub iterations: Option<u32>,
    /// Upstream repo name, for `<repo>/<env>/audit.csv`; default: the prefix's first segment.
    pub repo: Option<String>,
    #[serde(default = "yes")]
    pub audit: bool,
    /// Re-seal a CLI bundle whose embedded stamp differs from the pointer (upstream's
    /// unsealed-rotate bug) instead of refusing.
    #[serde(default)]
    pub accept_unsealed: bool,
    /// How long one attempt of an S3 request may take (default `"20s"`).
    pub timeout: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    WhenSupported,
    WhenRequired,
}

/// A non-secret value given inline, or read from the environment or a file.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars", deny_unknown_fields)]
#[serde(untagged)]
pub enum ValueSource {
    Literal(String),
    Env { env: String },
    File { file: PathBuf },
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct PassphraseSection {
    #[serde(default = "old_default")]
    pub old: OldSource,
    #[serde(default = "new_default")]
    pub new: NewSource,
    pub note: Option<String>,
    /// Extra audit meta keys (`ticket = "SEC-42"`).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

impl Default for PassphraseSection {
    fn default() -> Self {
        PassphraseSection {
            old: old_default(),
            new: new_default(),
            note: None,
            meta: BTreeMap::new(),
        }
    }
}

fn old_default() -> OldSource {
    OldSource::Keyword("store".into())
}
fn new_default() -> NewSource {
    NewSource::Generate {
        generate: Generate { length: 32 },
    }
}

/// Where the current passphrase comes from. A literal string other than the
/// keywords is refused: a plan never contains a passphrase.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars", deny_unknown_fields)]
#[serde(untagged)]
pub enum OldSource {
    /// `store` | `prompt` | `stdin`
    Keyword(String),
    File {
        file: PathBuf,
    },
    Env {
        env: String,
    },
    Command {
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars", deny_unknown_fields)]
#[serde(untagged)]
pub enum NewSource {
    /// `prompt` | `stdin`
    Keyword(String),
    Generate {
        generate: Generate,
    },
    File {
        file: PathBuf,
    },
    Env {
        env: String,
    },
    Command {
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct Generate {
    #[serde(default = "default_length")]
    pub length: usize,
}

fn default_length() -> usize {
    32
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    #[serde(default)]
    pub health: Vec<String>,
    /// How long verify may wait for every URL to report the new generation.
    pub timeout: Option<String>,
    /// Consecutive fresh answers each URL must give (catches stragglers behind a
    /// load balancer), default 3.
    pub samples: Option<u32>,
    pub interval: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// `run` exits 0 "not due" when the last rotation is younger than this.
    pub min_age: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// Commands run after the run with the JSON summary on stdin.
    #[serde(default)]
    pub command: Vec<String>,
    /// A Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<WebhookSection>,
    /// Any HTTPS endpoint that takes a JSON `POST` (see the README's "Notifications").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSection>,
    /// Which moments are sent (default all four).
    #[serde(default = "NotifyOn::all")]
    pub on: Vec<NotifyOn>,
    /// How long one delivery may take, command or webhook (default 10 s): a
    /// notification never holds a rotation up for longer.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<std::time::Duration>,
}

/// `[notify.slack]` / `[notify.webhook]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// The URL, from `{ env = "…" }` or `{ file = "…" }`: a webhook URL is a
    /// credential (anyone holding it can post), so a plan never holds it.
    pub url: SecretRef,
}

/// The moments a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    /// The run is about to stage: preflight passed and a rotation is due.
    Start,
    /// The vault is on the new generation and every store serves it.
    Success,
    /// The run stopped; what a human must do now.
    Failure,
    /// The run ended with the window open or its outcome unknown (exit 14).
    WindowOpen,
}

impl NotifyOn {
    pub fn all() -> Vec<NotifyOn> {
        vec![
            NotifyOn::Start,
            NotifyOn::Success,
            NotifyOn::Failure,
            NotifyOn::WindowOpen,
        ]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Start => "start",
            NotifyOn::Success => "success",
            NotifyOn::Failure => "failure",
            NotifyOn::WindowOpen => "window_open",
        }
    }
}

/// A credential that is not a passphrase, read from the environment or a file,
/// never written in the plan.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars", deny_unknown_fields)]
#[serde(untagged)]
pub enum SecretRef {
    Env { env: String },
    File { file: PathBuf },
}

/// Break-glass escrow: before anything is staged, the new passphrase is encrypted
/// with age to these public keys and written beside the journal (and, with
/// `vault_copy`, under the vault prefix), so a store that loses the value cannot
/// lose the passphrase. Only the holders of the matching identities can open it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct EscrowSection {
    /// `age1…` X25519 recipients (the security team's public keys).
    pub age_recipients: Vec<String>,
    /// Also write the sealed copy to `<prefix>.vsync-orchestrate/escrow/` in the
    /// vault, with `If-None-Match: *`.
    #[serde(default)]
    pub vault_copy: bool,
}

/// A source written either as a bare keyword or as a table with exactly one key.
///
/// `untagged` enums would accept `{ env = "X", file = "/y" }` (first match wins)
/// and ignore a misspelt key beside a valid one; a source is where a passphrase
/// comes from, so both are errors that name the key.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSource {
    Keyword(String),
    Table(BTreeMap<String, toml::Value>),
}

fn one_key<E: serde::de::Error>(
    what: &str,
    table: BTreeMap<String, toml::Value>,
    keys: &[&str],
) -> Result<(String, toml::Value), E> {
    let listed = keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(bad) = table.keys().find(|k| !keys.contains(&k.as_str())) {
        let hint = if what == "passphrase.new" && bad.contains("len") {
            " (the length goes inside: `generate = { length = 32 }`)".to_owned()
        } else {
            super::nearest::nearest(bad, keys.iter().copied())
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default()
        };
        return Err(E::custom(format!(
            "{what}: unknown key `{bad}`; it takes exactly one of {listed}{hint}"
        )));
    }
    if table.len() != 1 {
        let set: Vec<String> = table.keys().map(|k| format!("`{k}`")).collect();
        return Err(E::custom(if set.is_empty() {
            format!("{what}: an empty table; give exactly one of {listed}")
        } else {
            format!(
                "{what}: {} are {} set; give exactly one source",
                set.join(" and "),
                if set.len() == 2 { "both" } else { "all" }
            )
        }));
    }
    Ok(table.into_iter().next().expect("one entry"))
}

fn value_as<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    what: &str,
    key: &str,
    v: toml::Value,
) -> Result<T, E> {
    v.try_into::<T>().map_err(|e| {
        E::custom(format!(
            "{what}.{key}: {}",
            redact_strings(e.message().trim())
        ))
    })
}

/// serde quotes a refused string (`invalid type: string "…"`); in a passphrase
/// source that string may be the passphrase itself, so it is never repeated.
pub(super) fn redact_strings(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i]);
        out.push_str("a string");
        let mut chars = rest[i + "string \"".len()..].char_indices();
        let start = i + "string \"".len();
        let mut end = rest.len();
        while let Some((j, ch)) = chars.next() {
            match ch {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = start + j + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl<'de> Deserialize<'de> for OldSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const WHAT: &str = "passphrase.old";
        match RawSource::deserialize(d)? {
            RawSource::Keyword(k) => Ok(OldSource::Keyword(k)),
            RawSource::Table(t) => {
                let (k, v) = one_key::<D::Error>(WHAT, t, &["file", "env", "command"])?;
                Ok(match k.as_str() {
                    "file" => OldSource::File {
                        file: value_as(WHAT, &k, v)?,
                    },
                    "env" => OldSource::Env {
                        env: value_as(WHAT, &k, v)?,
                    },
                    _ => OldSource::Command {
                        command: value_as(WHAT, &k, v)?,
                    },
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for NewSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const WHAT: &str = "passphrase.new";
        match RawSource::deserialize(d)? {
            RawSource::Keyword(k) => Ok(NewSource::Keyword(k)),
            RawSource::Table(t) => {
                let (k, v) = one_key::<D::Error>(WHAT, t, &["generate", "file", "env", "command"])?;
                Ok(match k.as_str() {
                    "generate" => NewSource::Generate {
                        generate: value_as(WHAT, &k, v)?,
                    },
                    "file" => NewSource::File {
                        file: value_as(WHAT, &k, v)?,
                    },
                    "env" => NewSource::Env {
                        env: value_as(WHAT, &k, v)?,
                    },
                    _ => NewSource::Command {
                        command: value_as(WHAT, &k, v)?,
                    },
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for ValueSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const WHAT: &str = "this value";
        match RawSource::deserialize(d)? {
            RawSource::Keyword(k) => Ok(ValueSource::Literal(k)),
            RawSource::Table(t) => {
                let (k, v) = one_key::<D::Error>(WHAT, t, &["env", "file"])?;
                Ok(match k.as_str() {
                    "env" => ValueSource::Env {
                        env: value_as(WHAT, &k, v)?,
                    },
                    _ => ValueSource::File {
                        file: value_as(WHAT, &k, v)?,
                    },
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const WHAT: &str = "url";
        match RawSource::deserialize(d)? {
            RawSource::Keyword(_) => Err(serde::de::Error::custom(
                "url: a webhook URL is a credential and never written in a plan; \
                 give `{ env = \"NAME\" }` or `{ file = \"/path\" }`",
            )),
            RawSource::Table(t) => {
                let (k, v) = one_key::<D::Error>(WHAT, t, &["env", "file"])?;
                Ok(match k.as_str() {
                    "env" => SecretRef::Env {
                        env: value_as(WHAT, &k, v)?,
                    },
                    _ => SecretRef::File {
                        file: value_as(WHAT, &k, v)?,
                    },
                })
            }
        }
    }
}
