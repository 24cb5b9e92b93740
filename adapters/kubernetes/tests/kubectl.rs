//! Cross-check of the fake against a real client: the installed `kubectl` runs
//! `rollout restart` and `rollout status` against the fake API server, and must
//! agree with the restarter on every state (done, stalled, past its progress
//! deadline, paused, StatefulSet, DaemonSet). kubectl reads discovery first and
//! sends its own strategic-merge patch, so this also proves the fake speaks the API
//! kubectl expects. `VSYNC_TEST_KUBECTL` names the binary (`.ci/run` exports it).

mod common;

use common::*;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{ErrorKind, RolloutOutcome};
use vsync_orchestrate_kubernetes::RESTARTED_AT;
use vsync_orchestrate_testkit::service::{current_test, env_or_skip};

struct Kubectl {
    bin: String,
    home: tempfile::TempDir,
}

struct Ran {
    ok: bool,
    out: String,
}

impl Kubectl {
    fn find() -> Option<Kubectl> {
        let bin = env_or_skip(&current_test(), &["VSYNC_TEST_KUBECTL"])?.remove(0);
        Some(Kubectl {
            bin,
            home: tempfile::tempdir().unwrap(),
        })
    }

    async fn run(&self, env: &Env, args: &[&str]) -> Ran {
        let out = tokio::process::Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .args(["--context", &env.context, "-n", NS])
            .args([
                "--cache-dir",
                &self.home.path().join("cache").to_string_lossy(),
            ])
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ran {
            ok: out.status.success(),
            out: text,
        }
    }

    /// `kubectl get WHAT NAME -o jsonpath=PATH`: what it printed.
    async fn jsonpath(&self, env: &Env, what: &str, name: &str, path: &str) -> String {
        self.run(env, &["get", what, name, "-o", &format!("jsonpath={path}")])
            .await
            .out
    }

    /// `rollout restart` then `rollout status --timeout`.
    async fn restart_and_status(&self, env: &Env, what: &str, timeout: &str) -> (Ran, Ran) {
        let restart = self.run(env, &["rollout", "restart", what]).await;
        if !restart.ok {
            return (
                restart,
                Ran {
                    ok: false,
                    out: String::new(),
                },
            );
        }
        let status = self
            .run(
                env,
                &["rollout", "status", what, &format!("--timeout={timeout}")],
            )
            .await;
        (restart, status)
    }
}

/// The restarter's verdict on `workload` (`deployment/x`).
async fn ours(
    env: &Env,
    kind_name: &str,
    budget: Duration,
) -> vsync_orchestrate_api::Result<RolloutOutcome> {
    let (kind, name) = kind_name.split_once('/').unwrap();
    let mut c = env.config();
    match kind {
        "deployment" => c.deployments = vec![name.into()],
        "statefulset" => c.statefulsets = vec![name.into()],
        _ => c.daemonsets = vec![name.into()],
    }
    let r = env.restarter(c);
    r.preflight().await?;
    let rollout = r.restart(&run(name)).await?;
    r.wait(&rollout, Instant::now() + budget).await
}

async fn kubectl_and_the_restarter_agree_on_every_state() {
    let Some(k) = Kubectl::find() else { return };
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        for suffix in ["kubectl", "ours"] {
            s.add_deployment(NS, &format!("ok-{suffix}"), 3);
            s.add_deployment(NS, &format!("late-{suffix}"), 2).script(
                Res::Deployments,
                NS,
                &format!("late-{suffix}"),
                Script::ProgressDeadline,
            );
            s.add_deployment(NS, &format!("stuck-{suffix}"), 2).script(
                Res::Deployments,
                NS,
                &format!("stuck-{suffix}"),
                Script::Stall,
            );
            s.add_deployment(NS, &format!("paused-{suffix}"), 1)
                .pause(NS, &format!("paused-{suffix}"));
            s.add_statefulset(NS, &format!("db-{suffix}"), 3);
            s.add_daemonset(NS, &format!("agent-{suffix}"), 2);
        }
    }

    // Done.
    let (restart, status) = k
        .restart_and_status(&env, "deployment/ok-kubectl", "60s")
        .await;
    assert!(restart.ok, "{}", restart.out);
    assert!(
        restart.out.contains("deployment.apps/ok-kubectl restarted"),
        "{}",
        restart.out
    );
    assert!(status.ok, "{}", status.out);
    assert!(
        status
            .out
            .contains("deployment \"ok-kubectl\" successfully rolled out"),
        "{}",
        status.out
    );
    assert!(ours(&env, "deployment/ok-ours", Duration::from_secs(30))
        .await
        .unwrap()
        .is_done());

    // kubectl's patch and ours touch the same thing the same way.
    let patches = env.fake.state().patches();
    let theirs = patches.iter().find(|p| p.name == "ok-kubectl").unwrap();
    let mine = patches.iter().find(|p| p.name == "ok-ours").unwrap();
    assert_eq!(theirs.content_type, mine.content_type);
    let keys = |p: &vsync_orchestrate_kubernetes_fake::PatchSeen| {
        p.body["spec"]["template"]["metadata"]["annotations"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        keys(theirs),
        vec![RESTARTED_AT.to_owned()],
        "{}",
        theirs.body
    );
    assert!(keys(mine).contains(&RESTARTED_AT.to_owned()));
    let at = |p: &vsync_orchestrate_kubernetes_fake::PatchSeen| {
        p.body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
            .as_str()
            .unwrap()
            .len()
    };
    assert_eq!(
        at(theirs),
        at(mine),
        "restartedAt in another format than kubectl's"
    );

    // ProgressDeadlineExceeded.
    let (_, status) = k
        .restart_and_status(&env, "deployment/late-kubectl", "60s")
        .await;
    assert!(!status.ok, "{}", status.out);
    assert!(
        status.out.contains("exceeded its progress deadline"),
        "{}",
        status.out
    );
    match ours(&env, "deployment/late-ours", Duration::from_secs(30))
        .await
        .unwrap()
    {
        RolloutOutcome::Failed { reason } => assert!(
            reason.contains("exceeded its progress deadline"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }

    // Stalled: neither calls it done; both give up at their timeout.
    let (_, status) = k
        .restart_and_status(&env, "deployment/stuck-kubectl", "2s")
        .await;
    assert!(!status.ok, "{}", status.out);
    assert!(
        status.out.contains("timed out waiting for the condition"),
        "{}",
        status.out
    );
    assert!(
        status
            .out
            .contains("1 out of 2 new replicas have been updated"),
        "{}",
        status.out
    );
    match ours(&env, "deployment/stuck-ours", Duration::from_secs(2))
        .await
        .unwrap()
    {
        RolloutOutcome::TimedOut { detail } => assert!(
            detail.contains("1 out of 2 new replicas have been updated"),
            "{detail}"
        ),
        other => panic!("{other:?}"),
    }

    // Paused: both refuse to restart, and name `rollout resume`.
    let (restart, _) = k
        .restart_and_status(&env, "deployment/paused-kubectl", "5s")
        .await;
    assert!(!restart.ok, "{}", restart.out);
    assert!(
        restart
            .out
            .contains("can't restart paused deployment (run rollout resume first)"),
        "{}",
        restart.out
    );
    let e = ours(&env, "deployment/paused-ours", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("rollout resume"), "{}", e.message());
    assert_eq!(
        env.fake
            .state()
            .patch_count(Res::Deployments, NS, "paused-kubectl"),
        0
    );

    // StatefulSet and DaemonSet.
    let (restart, status) = k
        .restart_and_status(&env, "statefulset/db-kubectl", "60s")
        .await;
    assert!(restart.ok, "{}", restart.out);
    assert!(status.ok, "{}", status.out);
    assert!(
        status
            .out
            .contains("roll out complete: 3 new pods have been updated"),
        "{}",
        status.out
    );
    assert!(ours(&env, "statefulset/db-ours", Duration::from_secs(30))
        .await
        .unwrap()
        .is_done());
    let (restart, status) = k
        .restart_and_status(&env, "daemonset/agent-kubectl", "60s")
        .await;
    assert!(restart.ok, "{}", restart.out);
    assert!(status.ok, "{}", status.out);
    assert!(
        status
            .out
            .contains("daemon set \"agent-kubectl\" successfully rolled out"),
        "{}",
        status.out
    );
    assert!(ours(&env, "daemonset/agent-ours", Duration::from_secs(30))
        .await
        .unwrap()
        .is_done());
}

async fn kubectl_sees_the_restarters_rollout_as_unfinished_until_the_controller_catches_up() {
    let Some(k) = Kubectl::find() else { return };
    let env = Env::new("prod").await;
    env.fake.state().add_deployment(NS, "api", 2);
    env.fake.state().hold = true;
    let r = env.deployments(&["api"]);
    let rollout = r.restart(&run("held")).await.unwrap();
    let status = k
        .run(
            &env,
            &["rollout", "status", "deployment/api", "--timeout=1s"],
        )
        .await;
    assert!(
        !status.ok,
        "kubectl called the held rollout done: {}",
        status.out
    );
    assert!(
        status
            .out
            .contains("Waiting for deployment spec update to be observed"),
        "{}",
        status.out
    );
    let out = r
        .wait(&rollout, Instant::now() + Duration::from_millis(500))
        .await
        .unwrap();
    assert!(matches!(out, RolloutOutcome::TimedOut { .. }), "{out:?}");
    env.fake.state().hold = false;
    let status = k
        .run(
            &env,
            &["rollout", "status", "deployment/api", "--timeout=30s"],
        )
        .await;
    assert!(status.ok, "{}", status.out);
    assert!(r.wait(&rollout, soon()).await.unwrap().is_done());
}

/// Secrets as kubectl reads and writes them: `get` (the server-side table and
/// `-o jsonpath`), `create secret generic`, `patch` (merge and strategic), and the
/// API server's refusals as kubectl prints them — a stale `resourceVersion`, an
/// immutable Secret, RBAC — then the store and kubectl see each other's writes.
async fn kubectl_reads_and_patches_secrets_as_on_a_cluster() {
    use vsync_orchestrate_api::{Passphrase, RunId};
    let Some(k) = Kubectl::find() else { return };
    let env = Env::new("prod").await;
    let b64 = |s: &str| {
        serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec()))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    };

    // `kubectl create -f` sends JSON (`create secret generic` sends protobuf,
    // which this fake does not decode).
    let manifest = env.dir.path().join("secret.json");
    std::fs::write(
        &manifest,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "app"},
            "stringData": {"VSYNC_PASSPHRASE": "kubectl-old-value", "OTHER": "x"}})
        .to_string(),
    )
    .unwrap();
    let manifest = manifest.to_string_lossy().into_owned();
    let create = ["create", "--validate=false", "-f", manifest.as_str()];
    let made = k.run(&env, &create).await;
    assert!(made.ok, "{}", made.out);
    assert!(made.out.contains("secret/app created"), "{}", made.out);
    let again = k.run(&env, &create).await;
    assert!(!again.ok);
    assert!(
        again
            .out
            .contains("Error from server (AlreadyExists): error when creating")
            && again.out.contains("secrets \"app\" already exists"),
        "{}",
        again.out
    );

    let table = k.run(&env, &["get", "secret", "app"]).await;
    assert!(table.ok, "{}", table.out);
    let lines: Vec<Vec<&str>> = table
        .out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "TYPE", "DATA", "AGE"], "{}", table.out);
    assert_eq!(lines[1][..3], ["app", "Opaque", "2"], "{}", table.out);
    let value = k
        .jsonpath(&env, "secret", "app", "{.data.VSYNC_PASSPHRASE}")
        .await;
    assert_eq!(value, b64("kubectl-old-value"));
    let missing = k.run(&env, &["get", "secret", "nope"]).await;
    assert!(
        missing
            .out
            .contains("Error from server (NotFound): secrets \"nope\" not found"),
        "{}",
        missing.out
    );

    // A patch with the resourceVersion kubectl read: applied. With a stale one:
    // the API server's 409, as kubectl prints it, and nothing changed.
    let rv = k
        .jsonpath(&env, "secret", "app", "{.metadata.resourceVersion}")
        .await;
    let patch = |rv: &str, v: &str| {
        format!(
            "{{\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"data\":{{\"VSYNC_PASSPHRASE\":\"{}\"}}}}",
            b64(v)
        )
    };
    let ok = k
        .run(
            &env,
            &[
                "patch",
                "secret",
                "app",
                "--type",
                "merge",
                "-p",
                &patch(&rv, "kubectl-new-value"),
            ],
        )
        .await;
    assert!(ok.ok, "{}", ok.out);
    assert!(ok.out.contains("secret/app patched"), "{}", ok.out);
    let stale = k
        .run(
            &env,
            &[
                "patch",
                "secret",
                "app",
                "--type",
                "merge",
                "-p",
                &patch(&rv, "kubectl-late-value"),
            ],
        )
        .await;
    assert!(!stale.ok, "{}", stale.out);
    assert!(
        stale.out.contains(
            "Error from server (Conflict): Operation cannot be fulfilled on secrets \"app\": \
             the object has been modified; please apply your changes to the latest version \
             and try again"
        ),
        "{}",
        stale.out
    );
    assert_eq!(
        env.fake
            .state()
            .secret_value(NS, "app", "VSYNC_PASSPHRASE")
            .as_deref(),
        Some("kubectl-new-value")
    );
    // kubectl's default patch type (strategic merge) of a label.
    let labelled = k
        .run(
            &env,
            &[
                "patch",
                "secret",
                "app",
                "-p",
                r#"{"metadata":{"labels":{"team":"shop"}}}"#,
            ],
        )
        .await;
    assert!(labelled.ok, "{}", labelled.out);

    // The store and kubectl see each other's writes.
    let mut c = env.secret_config("app");
    c.key = "VSYNC_PASSPHRASE".into();
    let store = env.secret_store(c);
    assert!(store
        .read_current()
        .await
        .unwrap()
        .unwrap()
        .same_as(&Passphrase::from("kubectl-new-value")));
    let staged = store
        .stage(
            &Passphrase::from("store-new-value"),
            &RunId("kubectl-run".into()),
        )
        .await
        .unwrap();
    let listed = k.run(&env, &["get", "secrets"]).await;
    assert!(
        listed.out.contains("app-vsync-staged") && listed.out.contains("Opaque"),
        "{}",
        listed.out
    );
    let by_label = k
        .run(
            &env,
            &[
                "get",
                "secrets",
                "-l",
                "app.kubernetes.io/managed-by=vsync-orchestrate",
                "-o",
                "name",
            ],
        )
        .await;
    assert_eq!(by_label.out.trim(), "secret/app-vsync-staged");
    store.activate(&staged).await.unwrap();
    let value = k
        .jsonpath(&env, "secret", "app", "{.data.VSYNC_PASSPHRASE}")
        .await;
    assert_eq!(value, b64("store-new-value"));
    let deleted = k.run(&env, &["delete", "secret", "app-vsync-staged"]).await;
    assert!(deleted.ok, "{}", deleted.out);
    assert!(
        deleted.out.contains("secret \"app-vsync-staged\" deleted"),
        "{}",
        deleted.out
    );

    // Immutable: metadata may change, data may not (422 Invalid).
    k.run(
        &env,
        &[
            "patch",
            "secret",
            "app",
            "--type",
            "merge",
            "-p",
            r#"{"immutable":true}"#,
        ],
    )
    .await;
    let refused = k
        .run(
            &env,
            &[
                "patch",
                "secret",
                "app",
                "--type",
                "merge",
                "-p",
                &format!("{{\"data\":{{\"OTHER\":\"{}\"}}}}", b64("y")),
            ],
        )
        .await;
    assert!(!refused.ok, "{}", refused.out);
    assert!(
        refused.out.contains(
            "The Secret \"app\" is invalid: data: Forbidden: field is immutable when \
             `immutable` is set"
        ),
        "{}",
        refused.out
    );
    let e = store.preflight().await.unwrap_err();
    assert!(e.message().contains("immutable"), "{}", e.message());

    // RBAC: kubectl gets the API server's 403.
    env.fake.state().set_rbac(Some(vec![Rule {
        api_groups: vec!["".into()],
        resources: vec!["secrets".into()],
        verbs: vec!["get".into()],
        resource_names: vec![],
    }]));
    let forbidden = k
        .run(
            &env,
            &[
                "patch",
                "secret",
                "app",
                "--type",
                "merge",
                "-p",
                r#"{"metadata":{"labels":{"a":"b"}}}"#,
            ],
        )
        .await;
    assert!(!forbidden.ok, "{}", forbidden.out);
    assert!(
        forbidden.out.contains(
            "Error from server (Forbidden): secrets \"app\" is forbidden: User \
             \"system:serviceaccount:ops:vsync-orchestrate\" cannot patch resource \"secrets\" \
             in API group \"\" in the namespace \"shop\""
        ),
        "{}",
        forbidden.out
    );
}

/// External Secrets in the fake, driven as an operator does with kubectl: create
/// an ExternalSecret, read its `Ready` condition and `refreshTime`, force a sync
/// with the `force-sync` annotation, and see the refresh policies ESO documents
/// (`Periodic` on its interval and on the annotation, `OnChange` on the
/// annotation, `CreatedOnce` never again), and a stopped controller syncing nothing.
async fn kubectl_drives_external_secrets_as_eso_documents() {
    let Some(k) = Kubectl::find() else { return };
    let env = Env::new("prod").await;
    let json_value = |v: &str| format!("{{\"VSYNC_PASSPHRASE\":\"{v}\"}}");
    env.fake
        .state()
        .set_provider_value("prod/myapp/config", &json_value("v1"));
    let b64 = |s: &str| {
        serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec()))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    };
    let jsonpath = |what: &'static str, name: &'static str, path: &'static str| {
        let (k, env) = (&k, &env);
        async move { k.jsonpath(env, what, name, path).await }
    };
    let until = |what: &'static str, name: &'static str, path: &'static str, want: String| {
        let jsonpath = &jsonpath;
        async move {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let got = jsonpath(what, name, path).await;
                if got == want || Instant::now() > end {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    for (name, policy, interval) in [
        ("periodic", "Periodic", "1h"),
        ("onchange", "OnChange", "1h"),
        ("once", "CreatedOnce", "1h"),
        ("fast", "Periodic", "1s"),
    ] {
        let manifest = env.dir.path().join(format!("{name}.json"));
        std::fs::write(
            &manifest,
            serde_json::json!({
                "apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
                "metadata": {"name": name},
                "spec": {
                    "refreshInterval": interval, "refreshPolicy": policy,
                    "secretStoreRef": {"name": "aws", "kind": "SecretStore"},
                    "target": {"name": format!("{name}-secret")},
                    "data": [{"secretKey": "VSYNC_PASSPHRASE",
                        "remoteRef": {"key": "prod/myapp/config", "property": "VSYNC_PASSPHRASE"}}]
                }
            })
            .to_string(),
        )
        .unwrap();
        let made = k
            .run(
                &env,
                &[
                    "create",
                    "--validate=false",
                    "-f",
                    &manifest.to_string_lossy(),
                ],
            )
            .await;
        assert!(made.ok, "{}", made.out);
        assert!(
            made.out.contains(&format!(
                "externalsecret.external-secrets.io/{name} created"
            )),
            "{}",
            made.out
        );
    }
    let ready = r#"{.status.conditions[?(@.type=="Ready")].status}"#;
    let data = "{.data.VSYNC_PASSPHRASE}";
    for (es, secret) in [
        ("periodic", "periodic-secret"),
        ("onchange", "onchange-secret"),
        ("once", "once-secret"),
    ] {
        assert_eq!(
            until("externalsecret", es, ready, "True".into()).await,
            "True"
        );
        assert_eq!(until("secret", secret, data, b64("v1")).await, b64("v1"));
    }
    assert_eq!(
        jsonpath(
            "es",
            "periodic",
            r#"{.status.conditions[?(@.type=="Ready")].reason}"#
        )
        .await,
        "SecretSynced"
    );
    assert_eq!(
        jsonpath(
            "secret",
            "periodic-secret",
            "{.metadata.ownerReferences[0].kind}"
        )
        .await,
        "ExternalSecret"
    );
    let refreshed = jsonpath("es", "periodic", "{.status.refreshTime}").await;
    assert!(
        refreshed.ends_with('Z') && refreshed.len() == 20,
        "{refreshed}"
    );

    // The provider changes; within the hour nothing syncs but the 1s one.
    env.fake
        .state()
        .set_provider_value("prod/myapp/config", &json_value("v2"));
    assert_eq!(
        until("secret", "fast-secret", data, b64("v2")).await,
        b64("v2")
    );
    assert_eq!(jsonpath("secret", "periodic-secret", data).await, b64("v1"));

    // force-sync, as ESO's docs write it.
    let synced_before = jsonpath("es", "periodic", "{.status.syncedResourceVersion}").await;
    for es in ["periodic", "onchange", "once"] {
        let a = k
            .run(
                &env,
                &["annotate", "es", es, "force-sync=1700000000", "--overwrite"],
            )
            .await;
        assert!(a.ok, "{}", a.out);
        assert!(
            a.out.contains(&format!(
                "externalsecret.external-secrets.io/{es} annotated"
            )),
            "{}",
            a.out
        );
    }
    assert_eq!(
        until("secret", "periodic-secret", data, b64("v2")).await,
        b64("v2")
    );
    assert_eq!(
        until("secret", "onchange-secret", data, b64("v2")).await,
        b64("v2")
    );
    assert_ne!(
        jsonpath("es", "periodic", "{.status.syncedResourceVersion}").await,
        synced_before
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        jsonpath("secret", "once-secret", data).await,
        b64("v1"),
        "CreatedOnce never syncs again"
    );

    // A stopped controller: the annotation changes, nothing syncs until it runs.
    env.fake.state().hold_external_secrets(true);
    env.fake
        .state()
        .set_provider_value("prod/myapp/config", &json_value("v3"));
    let syncs = env.fake.state().external_secret_syncs();
    k.run(
        &env,
        &[
            "annotate",
            "es",
            "periodic",
            "force-sync=1700000001",
            "--overwrite",
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(jsonpath("secret", "periodic-secret", data).await, b64("v2"));
    assert_eq!(env.fake.state().external_secret_syncs(), syncs);
    env.fake.state().hold_external_secrets(false);
    assert_eq!(
        until("secret", "periodic-secret", data, b64("v3")).await,
        b64("v3")
    );

    // A provider error: Ready turns False with ESO's reason.
    env.fake
        .state()
        .set_provider_value("prod/myapp/config", "not json");
    k.run(
        &env,
        &[
            "annotate",
            "es",
            "periodic",
            "force-sync=1700000002",
            "--overwrite",
        ],
    )
    .await;
    assert_eq!(
        until("es", "periodic", ready, "False".into()).await,
        "False"
    );
    assert_eq!(
        jsonpath(
            "es",
            "periodic",
            r#"{.status.conditions[?(@.type=="Ready")].reason}"#
        )
        .await,
        "SecretSyncedError"
    );
    assert_eq!(jsonpath("secret", "periodic-secret", data).await, b64("v3"));
}

/// The Secrets Store CSI driver's objects in the fake as kubectl reads them: a
/// SecretProviderClass (`get -o json`, `-o name`, the API server's `NotFound`), a
/// Deployment whose pod template mounts the driver, and the driver's DaemonSet
/// args through the very command the restarter's preflight prints.
async fn kubectl_reads_secret_provider_classes_and_the_csi_driver() {
    let Some(k) = Kubectl::find() else { return };
    let env = Env::new("prod").await;
    {
        let mut s = env.fake.state();
        s.add_secret_provider_class(
            NS,
            serde_json::json!({"metadata": {"name": "vsync"}, "spec": {
                "provider": "aws",
                "parameters": {"objects": "- objectName: \"myapp/prod\"\n"},
                "secretObjects": [{"secretName": "vsync-synced", "type": "Opaque",
                    "data": [{"objectName": "myapp/prod", "key": "VSYNC_PASSPHRASE"}]}]}}),
        );
        s.add_csi_deployment(NS, "api", 2, "vsync");
        s.add_csi_driver(
            "csi-secrets-store",
            &[
                "--enable-secret-rotation=true",
                "--rotation-poll-interval=30s",
            ],
        );
    }
    let got = k
        .run(&env, &["get", "secretproviderclass", "vsync", "-o", "json"])
        .await;
    assert!(got.ok, "{}", got.out);
    let spc: serde_json::Value = serde_json::from_str(&got.out).expect(&got.out);
    assert_eq!(spc["apiVersion"], "secrets-store.csi.x-k8s.io/v1");
    assert_eq!(spc["kind"], "SecretProviderClass");
    assert_eq!(spc["metadata"]["namespace"], NS);
    assert_eq!(spc["spec"]["provider"], "aws");
    assert_eq!(
        spc["spec"]["secretObjects"][0]["secretName"],
        "vsync-synced"
    );

    let names = k
        .run(&env, &["get", "secretproviderclasses", "-o", "name"])
        .await;
    assert!(names.ok, "{}", names.out);
    assert_eq!(
        names.out.trim(),
        "secretproviderclass.secrets-store.csi.x-k8s.io/vsync"
    );

    let missing = k
        .run(&env, &["get", "secretproviderclass", "nope", "-o", "json"])
        .await;
    assert!(!missing.ok, "{}", missing.out);
    assert!(
        missing.out.contains(
            "Error from server (NotFound): secretproviderclasses.secrets-store.csi.x-k8s.io \"nope\" not found"
        ),
        "{}",
        missing.out
    );

    let volume = k.jsonpath(&env, "deployment", "api", "{.spec.template.spec.volumes[0].csi.driver} {.spec.template.spec.volumes[0].csi.volumeAttributes.secretProviderClass}").await;
    assert_eq!(volume, "secrets-store.csi.k8s.io vsync", "{volume}");

    // What preflight tells the operator to run when it cannot read the flags.
    let args = k
        .run(
            &env,
            &[
                "get",
                "daemonsets",
                "-n",
                "kube-system",
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.name}: {.spec.template.spec.containers[?(@.name=="secrets-store")].args}{"\n"}{end}"#,
            ],
        )
        .await;
    assert!(args.ok, "{}", args.out);
    assert!(
        args.out.starts_with("csi-secrets-store: [")
            && args.out.contains("\"--enable-secret-rotation=true\"")
            && args.out.contains("\"--rotation-poll-interval=30s\""),
        "{}",
        args.out
    );
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[multi_thread(2)] kubectl_and_the_restarter_agree_on_every_state,
        #[multi_thread(2)] kubectl_sees_the_restarters_rollout_as_unfinished_until_the_controller_catches_up,
        #[multi_thread(2)] kubectl_reads_and_patches_secrets_as_on_a_cluster,
        #[multi_thread(2)] kubectl_drives_external_secrets_as_eso_documents,
        #[multi_thread(2)] kubectl_reads_secret_provider_classes_and_the_csi_driver,
    ],
}
