//! The plan's JSON Schema, generated from the same types the loader deserializes
//! into (the adapters' own config tables included), so an editor's completion and
//! checks can never drift from what `validate` accepts.

use super::model::Plan;
use serde_json::Value;
use vsync_orchestrate_api::schemars;

/// The schema of a plan file, as taplo and Even Better TOML read it.
pub fn plan() -> Value {
    let mut schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Plan>();
    schema.insert(
        "title".into(),
        Value::String("vsync-orchestrate plan".into()),
    );
    schema.insert(
        "description".into(),
        Value::String(
            "A declarative rotation plan: the vault, where the passphrase lives, what restarts, how to verify (see the README's \"The plan\")"
                .into(),
        ),
    );
    schema.to_value()
}

pub fn pretty() -> String {
    serde_json::to_string_pretty(&plan()).expect("a schema serialises")
}
