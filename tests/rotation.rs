//! Rotation round trips on both layouts and both backends (local directory, and
//! moto in server mode speaking the real S3 protocol), plus the conflict paths.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::engine::Exit;
use vsync_orchestrate::vault::audit::{self, Origin};
use vsync_orchestrate::vault::storage::{DirStorage, Storage};
use vsync_orchestrate::vault::{
    AuditOutcome, AuditSpec, Content, KdfParams, Layout, LayoutChoice, Refusal, RotateError,
    SeedContent, Vault, VaultErrorKind,
};

const OLD: &str = "old-passphrase-0123456789abcdef";
const NEW: &str = "new-passphrase-fedcba9876543210";

fn kdf() -> KdfParams {
    // Real deployments use 600000; a small count keeps the suite fast and changes nothing else.
    KdfParams::new("AbCdEfGhIjKlMnOpQrStUvWx", 2000)
}

fn seed_content(layout: Layout) -> SeedContent {
    match layout {
        Layout::Runtime => SeedContent::Json {
            kv: BTreeMap::from([("DATABASE_URL".into(), "postgres://db/app".into())]),
            assets: BTreeMap::from([("tls.key".into(), b"-----BEGIN KEY-----\n".to_vec())]),
        },
        Layout::Cli => SeedContent::Files(vec![
            (
                "infra/vault/prod/.env.prod".into(),
                b"DATABASE_URL=postgres://db/app\n".to_vec(),
            ),
            (
                "infra/vault/prod/gcp-sa.json".into(),
                b"{\"type\":\"service_account\"}".to_vec(),
            ),
        ]),
    }
}

fn audit_spec(vault_prefix: &str) -> AuditSpec {
    let repo = vault_prefix.split('/').next().unwrap();
    AuditSpec {
        key: audit::audit_key(repo, "prod"),
        user_meta: vec![("note".into(), "quarterly, \"hygiene\"".into())],
        origin: Origin::of_this_machine(),
    }
}

fn payload(c: &Content) -> Vec<u8> {
    match c {
        Content::Zip(z) => z.to_vec(),
        Content::Json { kv, assets } => format!("{kv:?}{assets:?}").into_bytes(),
    }
}

async fn rotate(
    vault: &Vault,
    old: &str,
    new: &str,
    audit: Option<&AuditSpec>,
) -> Result<vsync_orchestrate::vault::Finished, RotateError> {
    let insp = vault.inspect(&Passphrase::from(old), false).await?;
    let prepared = vault.prepare(&insp, &Passphrase::from(new)).await?;
    let committed = vault.commit(&prepared).await?;
    Ok(vault
        .finish(
            prepared.gen_before,
            prepared.gen_after,
            &prepared.new_stamp,
            &committed.rotated_at,
            audit,
        )
        .await)
}

/// The full round-trip contract, run against any backend and layout.
async fn round_trip(storage: Arc<dyn Storage>, layout: Layout) {
    let prefix = format!("{}/prod/", support::unique("app"));
    let vault = Vault::new(storage.clone(), &prefix, kdf(), LayoutChoice::Auto);
    let seeded = vault
        .seed(layout, &Passphrase::from(OLD), &seed_content(layout))
        .await
        .unwrap();
    let before = vault.open(&Passphrase::from(OLD)).await.unwrap();
    assert_eq!((before.layout, before.gen), (layout, 0));
    assert_eq!(before.stamp, seeded);

    let spec = audit_spec(&prefix);
    let finished = rotate(&vault, OLD, NEW, Some(&spec)).await.unwrap();
    assert!(finished.bookkeeping_complete());
    assert_eq!(finished.audit, AuditOutcome::Written);

    let after = vault.open(&Passphrase::from(NEW)).await.unwrap();
    assert!(after.stamp > before.stamp, "stamps must strictly increase");
    assert_eq!(after.gen, 1);
    assert_eq!(
        payload(&after.content),
        payload(&before.content),
        "payload bytes changed"
    );
    let err = vault.open(&Passphrase::from(OLD)).await.unwrap_err();
    assert_eq!(err.kind, VaultErrorKind::WrongPassphrase);

    // Both counter cells, and the pointer's documented metadata.
    for cell in ["latest.manifest", "latest.meta"] {
        let body = storage
            .get(&format!("{prefix}{cell}"))
            .await
            .unwrap()
            .unwrap()
            .body;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["gen"].as_u64(), v["prev_gen"].as_u64()),
            (Some(1), Some(0)),
            "{cell}"
        );
    }
    let status = vault.status().await.unwrap().unwrap();
    assert_eq!(
        status.pointer_meta.get("gen").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        status.pointer_meta.get("prev-gen").map(String::as_str),
        Some("0")
    );
    assert!(status.pointer_meta.contains_key("rotated-at"));

    // The audit row parses back with the upstream columns and meta.
    let text = String::from_utf8(storage.get(&spec.key).await.unwrap().unwrap().body).unwrap();
    assert!(text.starts_with(&format!("{}\n", audit::HEADER)));
    let rows = audit::parse(&text);
    assert_eq!(rows.len(), 1);
    let get = |c: &str| rows[0].iter().find(|(k, _)| k == c).unwrap().1.clone();
    assert_eq!(get("action"), "rotate");
    assert_eq!(get("version_ts"), after.stamp.as_str());
    let meta: serde_json::Value = serde_json::from_str(&get("meta")).unwrap();
    assert_eq!(meta["event"], "rotate");
    assert_eq!(
        (meta["gen"].as_u64(), meta["prev_gen"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(meta["note"], "quarterly, \"hygiene\"");

    // A second rotation goes 1 -> 2 and appends a second row; finish is idempotent.
    let again = vault.inspect(&Passphrase::from(NEW), false).await.unwrap();
    let prepared = vault.prepare(&again, &Passphrase::from(OLD)).await.unwrap();
    let committed = vault.commit(&prepared).await.unwrap();
    vault
        .finish(
            prepared.gen_before,
            prepared.gen_after,
            &prepared.new_stamp,
            &committed.rotated_at,
            Some(&spec),
        )
        .await;
    let repeat = vault
        .finish(
            prepared.gen_before,
            prepared.gen_after,
            &prepared.new_stamp,
            &committed.rotated_at,
            Some(&spec),
        )
        .await;
    assert_eq!(repeat.audit, AuditOutcome::AlreadyPresent);
    assert_eq!(vault.open(&Passphrase::from(OLD)).await.unwrap().gen, 2);
    let text = String::from_utf8(storage.get(&spec.key).await.unwrap().unwrap().body).unwrap();
    assert_eq!(audit::parse(&text).len(), 2);
}

/// A vault at `app/prod/` seeded with OLD in `layout`.
async fn seeded(storage: Arc<dyn Storage>, layout: Layout) -> Vault {
    let vault = Vault::new(storage, "app/prod/", kdf(), LayoutChoice::Auto);
    vault
        .seed(layout, &Passphrase::from(OLD), &seed_content(layout))
        .await
        .unwrap();
    vault
}

fn dir_storage() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let s = DirStorage::new(dir.path()).unwrap();
    (dir, Arc::new(s))
}

async fn dir_round_trip_cli_layout() {
    let (_d, s) = dir_storage();
    round_trip(s, Layout::Cli).await;
}

async fn dir_round_trip_runtime_layout() {
    let (_d, s) = dir_storage();
    round_trip(s, Layout::Runtime).await;
}

async fn cli_bundles_are_resealed_with_the_new_stamp() {
    let (_d, s) = dir_storage();
    let vault = Vault::new(s.clone(), "app/prod/", kdf(), LayoutChoice::Cli);
    vault
        .seed(
            Layout::Cli,
            &Passphrase::from(OLD),
            &seed_content(Layout::Cli),
        )
        .await
        .unwrap();
    rotate(&vault, OLD, NEW, None).await.unwrap();
    let stamp = String::from_utf8(s.get("app/prod/latest").await.unwrap().unwrap().body).unwrap();
    let env = s
        .get(&format!("app/prod/versions/{stamp}.enc"))
        .await
        .unwrap()
        .unwrap()
        .body;
    let key = vsync_orchestrate::vault::crypto::Key::derive(&Passphrase::from(NEW), &kdf());
    let plain = vsync_orchestrate::vault::crypto::decrypt(&key, &env).unwrap();
    assert_eq!(&plain[..8], b"RQEM0001");
    assert_eq!(
        std::str::from_utf8(&plain[8..23]).unwrap(),
        stamp,
        "upstream's unsealed-rotate bug"
    );
}

async fn wrong_old_passphrase_and_missing_vault_touch_nothing() {
    let (dir, s) = dir_storage();
    let vault = Vault::new(s.clone(), "app/prod/", kdf(), LayoutChoice::Auto);
    let e = rotate(&vault, OLD, NEW, None).await.unwrap_err();
    assert_eq!(Exit::from(e.refusal()).code(), 5, "{e}");
    vault
        .seed(
            Layout::Runtime,
            &Passphrase::from(OLD),
            &seed_content(Layout::Runtime),
        )
        .await
        .unwrap();
    let before = s.list("").await.unwrap();
    let e = rotate(&vault, "not-the-passphrase-at-all", NEW, None)
        .await
        .unwrap_err();
    assert_eq!(Exit::from(e.refusal()).code(), 1, "{e}");
    assert!(
        !e.to_string().contains("not-the-passphrase"),
        "error leaks the passphrase: {e}"
    );
    assert_eq!(s.list("").await.unwrap(), before);
    drop(dir);
}

async fn malformed_counter_refuses_before_any_write() {
    let (_d, s) = dir_storage();
    let vault = seeded(s.clone(), Layout::Cli).await;
    s.put(
        "app/prod/latest.manifest",
        b"{\"gen\":\"three\"}".to_vec(),
        vsync_orchestrate::vault::storage::PutCondition::None,
        &Default::default(),
    )
    .await
    .unwrap();
    let before = s.list("").await.unwrap();
    assert_eq!(
        rotate(&vault, OLD, NEW, None).await.unwrap_err().refusal(),
        Refusal::Pointer
    );
    assert_eq!(s.list("").await.unwrap(), before);
}

async fn both_layouts_present_needs_an_explicit_choice() {
    let (_d, s) = dir_storage();
    let vault = seeded(s.clone(), Layout::Cli).await;
    vault
        .seed(
            Layout::Runtime,
            &Passphrase::from(OLD),
            &seed_content(Layout::Runtime),
        )
        .await
        .unwrap();
    assert!(matches!(
        rotate(&vault, OLD, NEW, None).await,
        Err(RotateError::AmbiguousLayout(_))
    ));
    let forced = Vault {
        layout: LayoutChoice::Runtime,
        ..vault
    };
    rotate(&forced, OLD, NEW, None).await.unwrap();
}

async fn dir_backend_conditional_writes_are_strict_under_concurrency() {
    use vsync_orchestrate::vault::storage::PutCondition;
    let (_d, s) = dir_storage();
    let etag = s
        .put(
            "k",
            b"0".to_vec(),
            PutCondition::IfAbsent,
            &Default::default(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (s, etag) = (s.clone(), etag.clone());
        tasks.push(tokio::spawn(async move {
            s.put(
                "k",
                format!("{i}").into_bytes(),
                PutCondition::IfMatch(etag),
                &Default::default(),
            )
            .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap().is_ok() as usize;
    }
    assert_eq!(won, 1, "exactly one conditional writer may win");
    assert!(s
        .put(
            "k",
            b"x".to_vec(),
            PutCondition::IfAbsent,
            &Default::default()
        )
        .await
        .is_err());
}

#[cfg(feature = "s3")]
mod moto {
    use super::*;
    use vsync_orchestrate::vault::storage::PutCondition;

    pub(crate) async fn s3_round_trip_cli_layout() {
        let Some(ep) = support::moto_endpoint() else {
            return;
        };
        let (_b, s) = support::moto_bucket(&ep).await;
        round_trip(s, Layout::Cli).await;
    }

    pub(crate) async fn s3_round_trip_runtime_layout() {
        let Some(ep) = support::moto_endpoint() else {
            return;
        };
        let (_b, s) = support::moto_bucket(&ep).await;
        round_trip(s, Layout::Runtime).await;
    }

    pub(crate) async fn stale_if_match_is_exit_3_and_leaves_the_pointer() {
        let Some(ep) = support::moto_endpoint() else {
            return;
        };
        let (_b, s) = support::moto_bucket(&ep).await;
        let vault = seeded(s.clone(), Layout::Cli).await;
        let insp = vault.inspect(&Passphrase::from(OLD), false).await.unwrap();
        let prepared = vault.prepare(&insp, &Passphrase::from(NEW)).await.unwrap();
        // Someone else moves the pointer after we read it.
        let intruder = s
            .put(
                "app/prod/latest",
                b"29990101-000000".to_vec(),
                PutCondition::None,
                &Default::default(),
            )
            .await;
        intruder.unwrap();
        let e = vault.commit(&prepared).await.unwrap_err();
        assert!(matches!(e, RotateError::PointerConflict { .. }), "{e}");
        assert_eq!(Exit::from(e.refusal()).code(), 3);
        let ptr = s.get("app/prod/latest").await.unwrap().unwrap().body;
        assert_eq!(
            ptr, b"29990101-000000",
            "a refused swap must not change the pointer"
        );
    }

    pub(crate) async fn two_rotations_at_once_exactly_one_wins() {
        let Some(ep) = support::moto_endpoint() else {
            return;
        };
        let (_b, s) = support::moto_bucket(&ep).await;
        let vault = seeded(s.clone(), Layout::Runtime).await;
        let contenders = ["contender-a-passphrase-0001", "contender-b-passphrase-0002"];
        let runs = contenders.map(|p| {
            let v = vault.clone();
            tokio::spawn(async move { rotate(&v, OLD, p, None).await.map(|_| p) })
        });
        let mut winners = Vec::new();
        for r in runs {
            match r.await.unwrap() {
                Ok(p) => winners.push(p),
                Err(e) => assert_eq!(
                    e.refusal(),
                    Refusal::Pointer,
                    "the loser must see the conflict: {e}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one rotation may win");
        let opened = vault.open(&Passphrase::from(winners[0])).await.unwrap();
        assert_eq!(opened.gen, 1);
    }

    pub(crate) async fn audit_failure_is_exit_4_with_the_manual_row() {
        let Some(ep) = support::moto_endpoint() else {
            return;
        };
        let (bucket, _) = support::moto_bucket(&ep).await;
        // Real moto behind a proxy that answers 403 to every PUT of the audit object.
        let proxy = support::fault_proxy::start(
            &ep,
            vec![support::fault_proxy::Rule::status(
                "PUT",
                "audit.csv",
                403,
                usize::MAX,
            )],
        )
        .await;
        let s: Arc<dyn Storage> = Arc::new(support::s3_storage(&proxy.endpoint, &bucket).await);
        let vault = seeded(s.clone(), Layout::Cli).await;
        let spec = audit_spec("app/prod/");
        let finished = rotate(&vault, OLD, NEW, Some(&spec)).await.unwrap();
        assert!(!finished.bookkeeping_complete()); // exit 4
        let AuditOutcome::Failed { row, .. } = &finished.audit else {
            panic!("{:?}", finished.audit)
        };
        let parsed = audit::parse(&format!("{}\n{row}\n", audit::HEADER));
        assert_eq!(parsed[0][1].1, "rotate");
        assert!(
            *proxy.hits.lock().unwrap() >= 1,
            "the fault was never injected"
        );
        // The rotation itself is live.
        assert_eq!(vault.open(&Passphrase::from(NEW)).await.unwrap().gen, 1);
    }
}

/// An endpoint that answers 200 with a web page to every request is not "both
/// layouts at once": the error names the endpoint, not `vault.layout`.
async fn an_endpoint_that_answers_200_to_everything_is_not_called_two_layouts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                let body = "<html><body>Welcome</body></html>";
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    let storage = support::s3_storage(&endpoint, "any-bucket").await;
    let vault = Vault::new(Arc::new(storage), "app/prod/", kdf(), LayoutChoice::Auto);
    let err = vault
        .inspect(&Passphrase::from(OLD), false)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RotateError::Invalid(_)), "{text}");
    assert!(
        text.contains("not an S3 API") && text.contains("vault.endpoint"),
        "{text}"
    );
    assert!(!text.contains("vault.layout"), "{text}");
}

vsync_orchestrate_testkit::main! {
    tests: [
        dir_round_trip_cli_layout,
        dir_round_trip_runtime_layout,
        cli_bundles_are_resealed_with_the_new_stamp,
        wrong_old_passphrase_and_missing_vault_touch_nothing,
        malformed_counter_refuses_before_any_write,
        both_layouts_present_needs_an_explicit_choice,
        dir_backend_conditional_writes_are_strict_under_concurrency,
        #[cfg(feature = "s3")] moto::s3_round_trip_cli_layout,
        #[cfg(feature = "s3")] moto::s3_round_trip_runtime_layout,
        #[cfg(feature = "s3")] moto::stale_if_match_is_exit_3_and_leaves_the_pointer,
        #[cfg(feature = "s3")] moto::two_rotations_at_once_exactly_one_wins,
        #[cfg(feature = "s3")] moto::audit_failure_is_exit_4_with_the_manual_row,
        an_endpoint_that_answers_200_to_everything_is_not_called_two_layouts,
    ],
}
