//! Break-glass escrow: the new passphrase sealed with age to a recipient, beside
//! the journal and under the vault prefix, opened with the real `age` command-line
//! tool (Debian's `age` package) and a test identity. Nothing in the clear.

mod support;

use std::process::Command;
use support::sandbox::{Sandbox, Shown, OLD};
use vsync_orchestrate::engine;

/// The `age` tools, or a skip on a laptop without them (a failure under CI, which
/// installs them), through the testkit's service-or-skip.
fn age_tools() -> Option<()> {
    use vsync_orchestrate_testkit::service::{current_test, tools_or_skip};
    tools_or_skip(&current_test(), &["age", "age-keygen"])
}

fn decrypt(identity: &std::path::Path, sealed: &[u8]) -> String {
    let file = identity.with_extension("sealed");
    std::fs::write(&file, sealed).unwrap();
    let out = Command::new("age")
        .arg("--decrypt")
        .arg("-i")
        .arg(identity)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn the_new_passphrase_is_sealed_before_staging_and_only_the_identity_opens_it() {
    if age_tools().is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("security-team.txt");
    let gen = Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(gen.status.success());
    let recipient = String::from_utf8(
        Command::new("age-keygen")
            .arg("-y")
            .arg(&identity)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");

    let sb = Sandbox::new(&format!(
        "[escrow]\nage_recipients = [\"{recipient}\"]\nvault_copy = true\n"
    ))
    .await;
    let shown = Shown::new();
    let s = engine::run(&sb.loaded, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    let new = sb.passphrase_file();
    assert_ne!(new, OLD);

    // Beside the journal, 0600, armored, and it opens to exactly the new passphrase.
    let dir = sb.dir.path().join("state/escrow");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sealed = std::fs::read(&files[0]).unwrap();
    assert!(String::from_utf8_lossy(&sealed).starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert_eq!(decrypt(&identity, &sealed), new);

    // Under the vault prefix too, written with If-None-Match.
    let keys_in_vault = sb
        .vault
        .storage
        .list(&sb.vault.key(".vsync-orchestrate/escrow/"))
        .await
        .unwrap();
    assert_eq!(keys_in_vault.len(), 1, "{keys_in_vault:?}");
    assert!(keys_in_vault[0].contains("gen-1-"), "{keys_in_vault:?}");
    let remote = sb
        .vault
        .storage
        .get(&keys_in_vault[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decrypt(&identity, &remote.body), new);

    // Nothing in the clear anywhere in the state directory or the vault.
    let mut stack = vec![sb.dir.path().join("state"), sb.dir.path().join("vault")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let body = std::fs::read(&p).unwrap();
                assert!(
                    !String::from_utf8_lossy(&body).contains(&new),
                    "{} holds the new passphrase in the clear",
                    p.display()
                );
            }
        }
    }

    // `status` shows which generation has a sealed copy.
    let st = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
        .args(["status", "--output", "json"])
        .arg(&sb.loaded.path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let escrow = v["escrow"].as_array().unwrap();
    assert_eq!(escrow.len(), 1, "{v}");
    assert_eq!(escrow[0]["generation"], 1);
    assert_eq!(escrow[0]["copies"].as_array().unwrap().len(), 2, "{v}");
}

/// A recipient that is not an age public key is a plan error with its position.
fn a_bad_recipient_is_refused_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "env = \"prod\"\n[vault]\ndir = \"/v\"\nprefix = \"app/prod/\"\nsalt = \"AbCdEfGhIjKlMnOpQrSt\"\n[[store]]\ntype = \"file\"\npath = \"/p\"\n[escrow]\nage_recipients = [\"ssh-ed25519 AAAAC3Nza\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
        .arg("validate")
        .arg(&plan)
        .output()
        .unwrap();
    // validate's verdicts are its result: stdout.
    let err = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.contains("plan.toml:10:1") && err.contains("not an age X25519 public key"),
        "{err}"
    );
}

vsync_orchestrate_testkit::main! {
    tests: [
        the_new_passphrase_is_sealed_before_staging_and_only_the_identity_opens_it,
        #[sync] a_bad_recipient_is_refused_by_validate,
    ],
}
