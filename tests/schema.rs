//! `vsync-orchestrate schema` is the JSON Schema editors (taplo, Even Better TOML)
//! use for plans. It is generated from the loader's own types, and checked here
//! with an independent validator (the `jsonschema` crate): every example plan in
//! `plans/` must satisfy it, and the mistakes `validate` refuses by structure (an
//! unknown key, a wrong type, an unknown adapter) must not.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn schema() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("schema prints JSON")
}

fn as_json(toml_text: &str) -> Value {
    let v: toml::Value = toml::from_str(toml_text).unwrap();
    serde_json::to_value(v).unwrap()
}

fn errors(v: &jsonschema::Validator, plan: &Value) -> Vec<String> {
    v.iter_errors(plan)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_example_plan_satisfies_the_schema() {
    let schema = schema();
    assert_eq!(schema["title"], "vsync-orchestrate plan");
    let v = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let mut plans: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    plans.sort();
    assert!(plans.len() >= 4, "{plans:?}");
    for p in &plans {
        let plan = as_json(&std::fs::read_to_string(p).unwrap());
        let errs = errors(&v, &plan);
        assert!(errs.is_empty(), "{}: {errs:#?}", p.display());
    }
}

#[test]
fn structural_mistakes_fail_the_schema_as_they_fail_validate() {
    let v = jsonschema::validator_for(&schema()).unwrap();
    let base = r#"
env = "prod"
[vault]
bucket = "b"
prefix = "app/prod/"
salt = { env = "VSYNC_SALT" }
[[store]]
type = "file"
path = "/etc/app/passphrase"
[[restart]]
type = "command"
targets = [{ name = "app", argv = ["systemctl", "restart", "app"] }]
[notify]
slack = { url = { env = "SLACK_WEBHOOK_URL" } }
timeout = "5s"
"#;
    assert!(
        errors(&v, &as_json(base)).is_empty(),
        "{:#?}",
        errors(&v, &as_json(base))
    );
    for (what, bad) in [
        (
            "an unknown top-level key",
            base.replace("env = \"prod\"", "env = \"prod\"\nenvironment = \"prod\""),
        ),
        (
            "an unknown key in a store",
            base.replace("path = \"/etc", "paht = \"/etc"),
        ),
        (
            "an unknown adapter type",
            base.replace("type = \"file\"", "type = \"fiel\""),
        ),
        (
            "a wrong type",
            base.replace("prefix = \"app/prod/\"", "prefix = 7"),
        ),
        (
            "a literal webhook URL",
            base.replace(
                "{ url = { env = \"SLACK_WEBHOOK_URL\" } }",
                "{ url = \"https://hooks.example.invalid/x\" }",
            ),
        ),
        (
            "an unknown notify moment",
            base.replace("timeout = \"5s\"", "on = [\"sometimes\"]"),
        ),
        (
            "a source with an unknown key",
            base.replace("salt = { env =", "salt = { envv ="),
        ),
        ("no [vault]", base.replace("[vault]", "[vaults]")),
    ] {
        assert_ne!(bad, base, "{what}: the replacement did not apply");
        assert!(
            !errors(&v, &as_json(&bad)).is_empty(),
            "{what} satisfied the schema"
        );
    }
}
