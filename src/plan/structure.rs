//! The plan's shape: every top-level key is known, and each section (each
//! `[[store]]` and `[[restart]]` table on its own) is read into its type
//! separately, so a mistake in one does not hide the next one's. What does not fit
//! is said in the plan's words, at the key's place.

use super::model::*;
use super::nearest::{nearest, suggest_type};
use super::problem::Report;
use super::spans::{find_key, find_key_in_value, key_of_span, Found, Step};
use serde::de::{DeserializeOwned, IntoDeserializer};
use std::path::PathBuf;
use toml_edit::{Item, Value};

/// The sections that were read, each `None` when it is absent or did not fit.
pub(super) struct Parts {
    pub(super) env: Option<String>,
    pub(super) vault: Option<VaultSection>,
    /// The default when absent.
    pub(super) passphrase: Option<PassphraseSection>,
    /// `(n, table)`: the n-th `[[store]]`, for those that read.
    pub(super) stores: Vec<(usize, StoreSpec)>,
    /// Whether the plan has a `store` key at all.
    pub(super) has_stores: bool,
    pub(super) restarts: Vec<(usize, RestartSpec)>,
    pub(super) has_restarts: bool,
    /// The default when absent.
    pub(super) verify: Option<VerifySection>,
    pub(super) schedule: Option<ScheduleSection>,
    pub(super) notify: Option<NotifySection>,
    pub(super) escrow: Option<EscrowSection>,
    pub(super) state_dir: Option<PathBuf>,
    /// Every key was known and read.
    complete: bool,
}

impl Parts {
    pub(super) fn into_plan(self) -> Option<Plan> {
        if !self.complete {
            return None;
        }
        Some(Plan {
            env: self.env?,
            vault: self.vault?,
            passphrase: self.passphrase?,
            stores: self.stores.into_iter().map(|(_, s)| s).collect(),
            restarts: self.restarts.into_iter().map(|(_, r)| r).collect(),
            verify: self.verify?,
            schedule: self.schedule,
            notify: self.notify,
            escrow: self.escrow,
            state_dir: self.state_dir,
        })
    }
}

/// The top-level keys, in the order serde lists them.
const TOP: &[&str] = &[
    "env",
    "vault",
    "passphrase",
    "store",
    "restart",
    "verify",
    "schedule",
    "notify",
    "escrow",
    "state_dir",
];

/// Which `type` list a table's `type = "…"` is looked up in.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Store,
    Restart,
    Section,
}

/// Rule `top-level`: every key known, `env` and `[vault]` present; then each
/// section read on its own.
pub(super) fn read(r: &mut Report) -> Parts {
    let mut parts = Parts {
        env: None,
        vault: None,
        passphrase: Some(PassphraseSection::default()),
        stores: Vec::new(),
        has_stores: false,
        restarts: Vec::new(),
        has_restarts: false,
        verify: Some(VerifySection::default()),
        schedule: None,
        notify: None,
        escrow: None,
        state_dir: None,
        complete: true,
    };
    let root = r.doc.root;
    for required in ["env", "vault"] {
        if !root.contains_key(required) {
            r.error((1, 1), format!("missing field `{required}`"));
            parts.complete = false;
        }
    }
    for (name, item) in root.iter() {
        let at = r.doc.at(&[Step::Key(name)]);
        let ok = match name {
            "env" => read_into(r, name, item, at, &mut parts.env),
            "vault" => read_into(r, name, item, at, &mut parts.vault),
            "passphrase" => read_into(r, name, item, at, &mut parts.passphrase),
            "verify" => read_into(r, name, item, at, &mut parts.verify),
            "schedule" => read_into(r, name, item, at, &mut parts.schedule),
            "notify" => read_into(r, name, item, at, &mut parts.notify),
            "escrow" => read_into(r, name, item, at, &mut parts.escrow),
            "state_dir" => read_into(r, name, item, at, &mut parts.state_dir),
            "store" => {
                parts.has_stores = true;
                read_tables(r, name, item, Kind::Store, &mut parts.stores)
            }
            "restart" => {
                parts.has_restarts = true;
                read_tables(r, name, item, Kind::Restart, &mut parts.restarts)
            }
            _ => {
                let listed = TOP
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let hint = nearest(name, TOP.iter().copied())
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                let key_at = root
                    .key(name)
                    .and_then(|k| k.span())
                    .map(|s| r.doc.span_at(&s))
                    .unwrap_or(at);
                r.error(
                    key_at,
                    format!("unknown field `{name}`, expected one of {listed}{hint}"),
                );
                false
            }
        };
        parts.complete &= ok;
    }
    parts
}

fn read_into<T: DeserializeOwned>(
    r: &mut Report,
    name: &str,
    item: &Item,
    at: (usize, usize),
    out: &mut Option<T>,
) -> bool {
    match read_one(r, name, item, at, Kind::Section) {
        Some(v) => {
            *out = Some(v);
            true
        }
        None => {
            *out = None;
            false
        }
    }
}

/// `[[name]]` tables (or `name = [{ … }, …]`), each read on its own.
fn read_tables<T: DeserializeOwned>(
    r: &mut Report,
    name: &str,
    item: &Item,
    kind: Kind,
    out: &mut Vec<(usize, T)>,
) -> bool {
    let tables: Vec<(Item, (usize, usize))> = match item {
        Item::ArrayOfTables(a) => a
            .iter()
            .enumerate()
            .map(|(n, t)| {
                (
                    Item::Table(t.clone()),
                    r.doc.at(&[Step::Key(name), Step::Nth(n)]),
                )
            })
            .collect(),
        Item::Value(Value::Array(a)) if a.iter().all(Value::is_inline_table) => a
            .iter()
            .map(|v| {
                let at = v
                    .span()
                    .map(|s| r.doc.span_at(&s))
                    .unwrap_or_else(|| r.doc.at(&[Step::Key(name)]));
                (Item::Value(v.clone()), at)
            })
            .collect(),
        _ => {
            let at = r.doc.at(&[Step::Key(name)]);
            r.error(
                at,
                format!(
                    "`{name}` must be a list of tables: write each one as a [[{name}]] table, not {}",
                    item_kind(item)
                ),
            );
            return false;
        }
    };
    let mut ok = true;
    for (n, (table, at)) in tables.into_iter().enumerate() {
        match read_one(r, name, &table, at, kind) {
            Some(v) => out.push((n, v)),
            None => ok = false,
        }
    }
    ok
}

fn item_kind(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a single [table]",
        Item::ArrayOfTables(_) => "a list of tables",
        Item::Value(v) => value_kind(v),
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "a number",
        Value::Float(_) => "a decimal number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::InlineTable(_) => "a table",
    }
}

/// One section or table through its type; what does not fit becomes a problem.
fn read_one<T: DeserializeOwned>(
    r: &mut Report,
    section: &str,
    item: &Item,
    at: (usize, usize),
    kind: Kind,
) -> Option<T> {
    let Ok(value) = item.clone().into_value() else {
        r.error(at, format!("`{section}` has no value"));
        return None;
    };
    match T::deserialize(value.into_deserializer()) {
        Ok(v) => Some(v),
        Err(e) => {
            let (place, message) = explain(r, section, item, at, kind, &e);
            r.error(place, message);
            None
        }
    }
}

/// Where a deserialization error is and what it means for the plan.
fn explain(
    r: &Report,
    section: &str,
    item: &Item,
    at: (usize, usize),
    kind: Kind,
    e: &toml_edit::de::Error,
) -> ((usize, usize), String) {
    let msg = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let backticked: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
    let found = locate(item, e, &msg, &backticked);
    let place = found.as_ref().map(|f| r.doc.span_at(&f.span)).unwrap_or(at);
    // The key as the operator would name it: `vault.iterations`, but in a
    // [[store]] table just `timeout_secs` (the line says which table).
    let key = match (&found, kind) {
        (Some(f), Kind::Section) => format!("{section}.{}", f.path),
        (Some(f), _) => f.path.clone(),
        (None, Kind::Section) => section.to_owned(),
        (None, _) => format!("[[{section}]]"),
    };
    // A source reads its own value and says which (`passphrase.old.env: …`).
    let (key, msg) = match msg.split_once(": ") {
        Some((path, rest)) if path.contains('.') && !path.contains(' ') && !path.contains('`') => {
            // The place found may be deeper (`…generate.length`).
            let deeper = (key.starts_with(&format!("{path}.")) && Shown::of(rest).is_some())
                .then(|| key.clone());
            (deeper.unwrap_or_else(|| path.to_owned()), rest.to_owned())
        }
        _ => match msg.strip_prefix("this value: ") {
            Some(rest) => (key.clone(), format!("{key}: {rest}")),
            None => (key, msg.clone()),
        },
    };
    // A string under these keys may be a passphrase written in the plan by mistake.
    let secret = std::iter::once(section)
        .chain(key.split('.'))
        .any(|k| ["passphrase", "old", "new", "generate"].contains(&k));
    let mut out = words(&msg, &key, &backticked, kind, found.as_ref(), secret);
    if secret {
        // `passphrase = "…"`, `old = "…"`: the string may be the passphrase.
        out = super::model::redact_strings(&out);
    }
    (place, out)
}

/// The key an error is about: by its span when it has one that falls on a key,
/// else by what it names (a `type`-tagged table is read whole, so its errors come
/// without a span of their own).
fn locate<'a>(
    item: &'a Item,
    e: &toml_edit::de::Error,
    msg: &str,
    backticked: &[&str],
) -> Option<Found<'a>> {
    if let Some(f) = e.span().and_then(|s| key_of_span(item, &s)) {
        // A source's own reading reports the whole source: the value it names
        // may be on a key inside it (`generate = { length = 1.5 }`).
        let inner = match (Shown::of(msg), f.value) {
            (Some(shown), Some(v)) => {
                find_key_in_value(v, &|_, x| x.is_some_and(|x| shown.matches(x)))
            }
            // "passphrase.new: unknown key `lenght`; …": at `lenght`.
            (None, Some(v)) if msg.contains(": unknown key `") => {
                let name = msg.split('`').nth(1).unwrap_or_default();
                find_key_in_value(v, &|k, _| k == name)
            }
            _ => None,
        };
        return Some(match inner {
            Some(i) => Found {
                path: format!("{}.{}", f.path, i.path),
                ..i
            },
            None => f,
        });
    }
    if msg.starts_with("unknown field") {
        let name = *backticked.first()?;
        return find_key(item, &|k, _| k == name);
    }
    if msg.starts_with("unknown variant") {
        let name = *backticked.first()?;
        return find_key(item, &|_, v| v.and_then(Value::as_str) == Some(name));
    }
    let shown = Shown::of(msg)?;
    find_key(item, &|_, v| v.is_some_and(|v| shown.matches(v)))
}

/// The value serde quotes in "invalid type: integer `42`, expected …".
enum Shown<'m> {
    Str(&'m str),
    /// A string the message does not repeat (it may be a passphrase).
    AnyStr,
    Int(i64),
    Float(f64),
    Bool(bool),
    List,
    Table,
}

impl<'m> Shown<'m> {
    fn of(msg: &'m str) -> Option<Shown<'m>> {
        let rest = msg
            .strip_prefix("invalid type: ")
            .or_else(|| msg.strip_prefix("invalid value: "))
            .or_else(|| msg.split_once(": invalid type: ").map(|(_, r)| r))
            .or_else(|| msg.split_once(": invalid value: ").map(|(_, r)| r))?;
        let between = |open: char, close: char| {
            let s = rest.find(open)? + 1;
            let len = rest[s..].find(close)?;
            Some(&rest[s..s + len])
        };
        Some(if rest.starts_with("a string,") {
            Shown::AnyStr
        } else if rest.starts_with("string \"") {
            Shown::Str(between('"', '"')?)
        } else if rest.starts_with("integer `") {
            Shown::Int(between('`', '`')?.parse().ok()?)
        } else if rest.starts_with("floating point `") {
            Shown::Float(between('`', '`')?.parse().ok()?)
        } else if rest.starts_with("boolean `") {
            Shown::Bool(between('`', '`')? == "true")
        } else if rest.starts_with("sequence") {
            Shown::List
        } else if rest.starts_with("map") {
            Shown::Table
        } else {
            return None;
        })
    }

    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Shown::Str(s), Value::String(x)) => x.value() == s,
            (Shown::AnyStr, Value::String(_)) => true,
            (Shown::Int(i), Value::Integer(x)) => x.value() == i,
            (Shown::Float(f), Value::Float(x)) => x.value() == f,
            (Shown::Bool(b), Value::Boolean(x)) => x.value() == b,
            (Shown::List, Value::Array(_)) => true,
            (Shown::Table, Value::InlineTable(_)) => true,
            _ => false,
        }
    }
}

const OLD_SOURCE: &str = "passphrase.old must be \"store\", \"prompt\", \"stdin\", { file = \"…\" }, { env = \"…\" } or { command = [\"…\"] }";
const NEW_SOURCE: &str = "passphrase.new must be { generate = { length = N } }, \"prompt\", \"stdin\", { file = \"…\" }, { env = \"…\" } or { command = [\"…\"] }";
const VALUE_SOURCE: &str = "must be a string, { env = \"VAR\" } or { file = \"path\" }";

/// Keys whose value is a list of tables, not of strings.
const TABLE_LISTS: &[&str] = &["store", "restart", "targets", "waves"];

/// serde's message in the plan's words: no Rust type names.
fn words(
    msg: &str,
    key: &str,
    backticked: &[&str],
    kind: Kind,
    found: Option<&Found>,
    secret: bool,
) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    if msg.starts_with("unknown variant") && !backticked.is_empty() {
        let given = backticked[0];
        if matches!(kind, Kind::Store | Kind::Restart) && last == "type" {
            // A type this tree knows but this build leaves out names its feature;
            // any other is an alias or a typo of one of the known types.
            if let Some(why) = crate::adapters::not_built(given) {
                return why;
            }
            let want = match kind {
                Kind::Store => "store",
                _ => "restarter",
            };
            let known: Vec<&str> = crate::adapters::known()
                .filter(|(_, k, _)| *k == want)
                .map(|(t, _, _)| t)
                .collect();
            if let Some(s) = suggest_type(given, &known) {
                return format!("{msg}; did you mean `{s}`?");
            }
            return msg.to_owned();
        }
        if let Some(s) = nearest(given, backticked[1..].iter().copied()) {
            return format!("{msg}; did you mean `{s}`?");
        }
        return msg.to_owned();
    }
    if msg.starts_with("unknown field") && backticked.len() > 1 {
        if let Some(s) = nearest(backticked[0], backticked[1..].iter().copied()) {
            return format!("{msg}; did you mean `{s}`?");
        }
        return msg.to_owned();
    }
    if msg.starts_with("missing field") {
        return match kind {
            Kind::Section => msg.to_owned(),
            _ => format!("{msg} in this {key} table"),
        };
    }
    if msg.contains("untagged enum RawSource") {
        // A source that is neither a string nor a table: say which source it is.
        return match last {
            "old" => OLD_SOURCE.to_owned(),
            "new" => NEW_SOURCE.to_owned(),
            _ => format!("`{key}` {VALUE_SOURCE}"),
        };
    }
    if msg.contains("untagged enum HostEntry") {
        return "a host is \"name\" or { host = \"name\", port = 22, user = \"…\", identity_file = \"…\", known_hosts_file = \"…\" }".into();
    }
    if let Some(w) = type_words(msg, key, last, kind, found, secret) {
        return w;
    }
    // A message of the plan's own (a custom check while reading): name the key.
    if found.is_some() && !msg.starts_with(last) && !msg.contains(key) {
        return format!("{key}: {msg}");
    }
    msg.to_owned()
}

/// "invalid type: string \"many\", expected u32" → "`vault.iterations` must be a
/// whole number, like 3; here it is the string \"many\"".
fn type_words(
    msg: &str,
    key: &str,
    last: &str,
    kind: Kind,
    found: Option<&Found>,
    secret: bool,
) -> Option<String> {
    let (head, expected) = msg.rsplit_once(", expected ")?;
    let given = head
        .strip_prefix("invalid type: ")
        .or_else(|| head.strip_prefix("invalid value: "))
        .or_else(|| head.split_once(": invalid type: ").map(|(_, g)| g))
        .or_else(|| head.split_once(": invalid value: ").map(|(_, g)| g))?;
    let invalid_value = head.contains("invalid value: ");
    let given_words = if secret && given.starts_with("string ") {
        "a string".to_owned()
    } else {
        given_words(given)
    };
    let integer = |max: &str| -> String {
        if let Some(n) = given
            .strip_prefix("integer `")
            .and_then(|g| g.strip_suffix('`'))
        {
            if invalid_value && n.starts_with('-') {
                return format!("`{key}` must be a whole number, 0 or more; here it is {n}");
            }
            if invalid_value {
                return format!("`{key}` = {n} is too large: at most {max}");
            }
        }
        let like = if last.ends_with("_secs") {
            "a whole number of seconds, like 60"
        } else {
            "a whole number, like 3"
        };
        format!("`{key}` must be {like}; here it is {given_words}")
    };
    Some(match expected {
        "u8" => integer("255"),
        "u16" => integer("65535"),
        "u32" => integer("4294967295"),
        "u64" | "usize" => integer("18446744073709551615"),
        "i8" | "i16" | "i32" | "i64" | "isize" | "an integer" => integer("9223372036854775807"),
        "a boolean" => format!("`{key}` must be true or false; here it is {given_words}"),
        "a string" | "a borrowed string" | "string" | "a string or a path" | "path string" => {
            format!("`{key}` must be a string, like \"…\"; here it is {given_words}")
        }
        "a sequence" => {
            let like = if TABLE_LISTS.contains(&last) {
                format!("a list of tables, like [{{ … }}, {{ … }}] or [[{last}]] tables")
            } else {
                "a list of strings, like [\"a\", \"b\"]".to_owned()
            };
            format!("`{key}` must be {like}; here it is {given_words}")
        }
        "a duration" => {
            let shown = match found.and_then(|f| f.value) {
                Some(Value::String(s)) => format!("{:?}", s.value()),
                _ => given_words,
            };
            format!("{last}: {shown} is not a duration like \"90s\", \"5m\" or \"80d\"")
        }
        e if e.starts_with("struct ") || e.starts_with("a map") || e == "map" => {
            format!("`{key}` must be a table: write [{key}] with its keys on the lines below, or {key} = {{ … }}; here it is {given_words}")
        }
        "variant identifier" | "enum identifier" => {
            let like = match kind {
                Kind::Restart => "\"command\"",
                _ => "\"file\"",
            };
            format!("`{key}` must be a string naming one of the types, like {like}; here it is {given_words}")
        }
        e if e.starts_with("enum ") || e.starts_with("one of") => {
            format!("`{key}` must be one of its names as a string; here it is {given_words}")
        }
        // An adapter's own description of what it takes ("an octal file mode as
        // a string, like \"0600\""); a bare Rust type name is left to the caller.
        e if e.contains(' ') && !e.contains("::") => {
            format!("`{key}` must be {e}; here it is {given_words}")
        }
        _ => return None,
    })
}

/// "string \"x\"" → "the string \"x\"", "integer `4`" → "4", "sequence" → "a list".
fn given_words(given: &str) -> String {
    let inner = |p: &str| {
        given
            .strip_prefix(p)
            .and_then(|g| g.strip_suffix('`'))
            .map(str::to_owned)
    };
    if given.starts_with("string ") {
        format!("the {given}")
    } else if let Some(n) = inner("integer `") {
        format!("the number {n}")
    } else if let Some(n) = inner("floating point `") {
        format!("the number {n}")
    } else if let Some(b) = inner("boolean `") {
        b
    } else if given == "a string" {
        given.to_owned()
    } else if given.starts_with("sequence") {
        "a list".to_owned()
    } else if given.starts_with("map") {
        "a table".to_owned()
    } else {
        given.to_owned()
    }
}
