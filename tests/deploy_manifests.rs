//! deploy/kubernetes/ as a person applies it: every manifest parses and maps to a
//! kind the API serves (the real `kubectl`, client-side dry run), the CronJob runs
//! under the restricted security context, everything it names (ServiceAccount,
//! Secret, ConfigMap, volume claim) is in the directory, and the plan in the
//! ConfigMap passes `validate`.
//!
//! `kubectl create --dry-run=client` still asks a server which kinds exist
//! (discovery, to map a kind to its resource). No cluster runs here, so the test
//! serves the discovery documents of the kinds the example uses, in the shape of
//! the API's `APIVersions`, `APIGroupList` and `APIResourceList`
//! (https://kubernetes.io/docs/reference/using-api/api-concepts/#discovery-apis);
//! a kind it does not serve, like a kind a real server does not know, fails.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn resource(name: &str, kind: &str, verbs: &[&str]) -> Value {
    json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": true, "kind": kind, "verbs": verbs})
}

/// The discovery document for `path`, or `None` (404).
fn discovery(path: &str) -> Option<Value> {
    let verbs = [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    let group = |name: &str| {
        json!({"name": name, "versions": [{"groupVersion": format!("{name}/v1"), "version": "v1"}],
               "preferredVersion": {"groupVersion": format!("{name}/v1"), "version": "v1"}})
    };
    let list = |gv: &str, resources: Vec<Value>| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources});
    Some(match path {
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [group("batch"), group("rbac.authorization.k8s.io")]}),
        "/api/v1" => list(
            "v1",
            vec![
                resource("configmaps", "ConfigMap", &verbs),
                resource("secrets", "Secret", &verbs),
                resource("serviceaccounts", "ServiceAccount", &verbs),
                resource("persistentvolumeclaims", "PersistentVolumeClaim", &verbs),
            ],
        ),
        "/apis/batch/v1" => list("batch/v1", vec![resource("cronjobs", "CronJob", &verbs)]),
        "/apis/rbac.authorization.k8s.io/v1" => list(
            "rbac.authorization.k8s.io/v1",
            vec![
                resource("roles", "Role", &verbs),
                resource("rolebindings", "RoleBinding", &verbs),
            ],
        ),
        _ => return None,
    })
}

/// Serves `discovery` on 127.0.0.1 until the process ends; its URL.
fn discovery_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                let (code, body) = match discovery(path) {
                    Some(v) => ("200 OK", v),
                    None => (
                        "404 Not Found",
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"}),
                    ),
                };
                let body = body.to_string();
                let mut conn = conn;
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

/// Every object `kubectl` makes of the directory, as JSON.
fn kubectl_objects() -> Option<Vec<Value>> {
    let test = "deploy_manifests";
    let probe = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return vsync_orchestrate_testkit::service::skip(test, "kubectl is not installed");
    }
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("kubectl")
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("none"))
        .args(["--server", &discovery_server()])
        .args([
            "create",
            "--dry-run=client",
            "--validate=false",
            "-o",
            "json",
            "-f",
        ])
        .arg(dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl: {stderr}");
    let mut objects = Vec::new();
    for v in serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>() {
        let v = v.expect("kubectl prints JSON");
        match v["kind"].as_str() {
            Some("List") => objects.extend(v["items"].as_array().unwrap().iter().cloned()),
            _ => objects.push(v),
        }
    }
    Some(objects)
}

fn named<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn names(objects: &[Value], kind: &str) -> BTreeSet<String> {
    named(objects, kind)
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The keys a securityContext may hold here: a misspelt one (`readOnlyRootFileSystem`)
/// would be dropped by the API server without a word, leaving the pod unhardened.
fn only_known_keys(ctx: &Value, known: &[&str], what: &str) {
    for k in ctx.as_object().unwrap().keys() {
        assert!(known.contains(&k.as_str()), "{what}: unknown key {k}");
    }
}

fn the_kubernetes_example_is_complete_and_hardened() {
    let Some(objects) = kubectl_objects() else {
        return;
    };
    let kinds: BTreeSet<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "PersistentVolumeClaim",
        "Secret",
        "ConfigMap",
        "CronJob",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    for o in &objects {
        assert_eq!(o["metadata"]["namespace"], "myapp", "{o}");
    }

    let cron = named(&objects, "CronJob")[0];
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    only_known_keys(
        psc,
        &[
            "runAsNonRoot",
            "runAsUser",
            "runAsGroup",
            "fsGroup",
            "seccompProfile",
        ],
        "pod securityContext",
    );
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let containers = pod["containers"].as_array().unwrap();
    assert!(!containers.is_empty());
    for c in containers {
        let sc = &c["securityContext"];
        only_known_keys(
            sc,
            &[
                "runAsNonRoot",
                "allowPrivilegeEscalation",
                "readOnlyRootFilesystem",
                "capabilities",
                "seccompProfile",
            ],
            "container securityContext",
        );
        assert_eq!(sc["runAsNonRoot"], true, "{sc}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{sc}");
        assert!(sc["capabilities"].get("add").is_none(), "{sc}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{sc}");
        let image = c["image"].as_str().unwrap();
        assert!(
            !image.ends_with(":latest") && image.contains(':'),
            "{image}"
        );
    }

    // Everything the pod names is in the directory.
    let sa = pod["serviceAccountName"].as_str().unwrap();
    assert!(names(&objects, "ServiceAccount").contains(sa), "{sa}");
    let binding = named(&objects, "RoleBinding")[0];
    assert!(names(&objects, "Role").contains(binding["roleRef"]["name"].as_str().unwrap()));
    assert_eq!(binding["subjects"][0]["name"], sa);
    let secrets = names(&objects, "Secret");
    let configmaps = names(&objects, "ConfigMap");
    let claims = names(&objects, "PersistentVolumeClaim");
    for c in containers {
        for e in c["env"].as_array().into_iter().flatten() {
            if let Some(r) = e["valueFrom"].get("secretKeyRef") {
                let name = r["name"].as_str().unwrap();
                assert!(
                    secrets.contains(name),
                    "env {} names Secret {name}",
                    e["name"]
                );
                let secret = named(&objects, "Secret")
                    .into_iter()
                    .find(|s| s["metadata"]["name"] == name)
                    .unwrap();
                let key = r["key"].as_str().unwrap();
                assert!(
                    secret["stringData"].get(key).is_some() || secret["data"].get(key).is_some(),
                    "Secret {name} has no key {key}"
                );
            }
        }
    }
    let mounts: BTreeSet<&str> = containers
        .iter()
        .flat_map(|c| c["volumeMounts"].as_array().unwrap())
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    // A read-only root needs a writable /tmp and state directory.
    assert!(
        mounts.contains("/tmp") && mounts.contains("/var/lib/vsync-orchestrate"),
        "{mounts:?}"
    );
    for v in pod["volumes"].as_array().unwrap() {
        if let Some(cm) = v.get("configMap") {
            assert!(configmaps.contains(cm["name"].as_str().unwrap()), "{v}");
        }
        if let Some(s) = v.get("secret") {
            assert!(secrets.contains(s["secretName"].as_str().unwrap()), "{v}");
        }
        if let Some(pvc) = v.get("persistentVolumeClaim") {
            assert!(claims.contains(pvc["claimName"].as_str().unwrap()), "{v}");
        }
    }

    // The plan in the ConfigMap is one `validate` accepts, and runs in the cluster
    // with the Role above.
    let plan = named(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["data"].get("plan.toml").is_some())
        .expect("a ConfigMap with plan.toml")["data"]["plan.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(plan.contains("type = \"kubernetes\"") && plan.contains("in_cluster = true"));
    // It is the EKS example's plan, External Secrets included, and the Role grants
    // what the force-sync needs (get and patch the ExternalSecret, get its Secret).
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/aws-eks.toml"))
            .unwrap();
    assert!(example.contains("external_secrets = [\"myapp-config\"]"));
    assert!(
        plan.contains("external_secrets = [\"myapp-config\"]"),
        "{plan}"
    );
    let rules = named(&objects, "Role")[0]["rules"]
        .as_array()
        .unwrap()
        .clone();
    let grants = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            let has = |k: &str, v: &str| r[k].as_array().unwrap().iter().any(|x| x == v);
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for verb in ["get", "patch"] {
        assert!(
            grants("external-secrets.io", "externalsecrets", verb),
            "{verb}"
        );
    }
    assert!(grants("", "secrets", "get"));
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("plan.toml"), &plan).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
        .arg("validate")
        .arg(t.path().join("plan.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The image the CronJob runs is built in two stages and runs as a non-root user.
fn the_dockerfile_builds_in_two_stages_and_runs_as_non_root() {
    let text = std::fs::read_to_string(dir().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().to_uppercase().starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].contains(" AS build"), "{froms:?}");
    assert!(text.contains("COPY --from=build "), "{text}");
    assert!(text.contains("--bin vsync-orchestrate"), "{text}");
    let user = text
        .lines()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert_eq!(user, "USER 65532:65532");
    // The CronJob's runAsUser is the image's user.
    let cron = std::fs::read_to_string(dir().join("cronjob.yaml")).unwrap();
    assert!(cron.contains("runAsUser: 65532"), "{cron}");
    // The build context is the repository root: its target/ must not be sent.
    let ignore = std::fs::read_to_string(dir().join("Dockerfile.dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "{ignore}");
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[sync] the_kubernetes_example_is_complete_and_hardened,
        #[sync] the_dockerfile_builds_in_two_stages_and_runs_as_non_root,
    ],
}
