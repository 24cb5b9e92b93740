//! The Secrets Store CSI driver in the fake: its `SecretProviderClass` resource
//! (`secrets-store.csi.x-k8s.io/v1`, namespaced) served like the CRD, pod templates
//! that mount the driver, and the driver's DaemonSet in `kube-system` whose
//! `secrets-store` container carries the rotation flags.
//!
//! Nothing here mounts anything: the restarter only reads these objects to say
//! when a pod's file changes, so the fake serves them as the API server would.
//!
//! References for every route and failure answer:
//! * the resource: group `secrets-store.csi.x-k8s.io`, kind `SecretProviderClass`,
//!   plural `secretproviderclasses`, singular `secretproviderclass`, `scope:
//!   Namespaced` (the driver's CRD, kubernetes-sigs/secrets-store-csi-driver
//!   `config/crd/bases/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml`), served
//!   as `v1` (the `apiVersion: secrets-store.csi.x-k8s.io/v1` of
//!   https://secrets-store-csi-driver.sigs.k8s.io/topics/sync-as-kubernetes-secret.html);
//!   `spec.provider`, `spec.parameters`, `spec.secretObjects[].secretName`,
//!   `.type`, `.data[].objectName`/`.key` as that CRD defines them.
//! * the pod's side: a `csi` volume with `driver: secrets-store.csi.k8s.io` and
//!   `volumeAttributes.secretProviderClass: <name>` (same page, "Pod yaml"); the
//!   class must be in the pod's namespace
//!   (https://secrets-store-csi-driver.sigs.k8s.io/concepts.html#secretproviderclass).
//! * the driver's DaemonSet: `csi-secrets-store` in `kube-system` with containers
//!   `node-driver-registrar`, `secrets-store` (args `--enable-secret-rotation=false`,
//!   `--rotation-poll-interval=2m`, …) and `liveness-probe`
//!   (kubernetes-sigs/secrets-store-csi-driver `deploy/secrets-store-csi-driver.yaml`;
//!   the Helm chart's template passes the two flags only when set).
//! * the paths of a namespaced custom resource
//!   (`/apis/GROUP/VERSION/namespaces/NS/PLURAL[/NAME]`) and its discovery
//!   document: https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris
//!   and https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#create-a-customresourcedefinition
//! * `404 NotFound` for a missing object (`secretproviderclasses.<group> "x" not
//!   found`, with `details` naming it) and for a group no CRD serves ("the server
//!   could not find the requested resource"): `Status`, api-conventions.md
//!   (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#response-status-kind).

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use vsync_orchestrate_testkit::fake_http::Response;

use crate::custom::{self, key};
use crate::{key as work_key, status, Cluster, Res};

pub(crate) const GROUP: &str = "secrets-store.csi.x-k8s.io";
pub(crate) const VERSION: &str = "v1";
pub(crate) const PLURAL: &str = "secretproviderclasses";
/// The CSI driver name pods put in `volumes[].csi.driver`.
pub const CSI_DRIVER: &str = "secrets-store.csi.k8s.io";
/// Where the driver's DaemonSet runs.
pub const DRIVER_NAMESPACE: &str = "kube-system";

fn not_found(name: &str) -> Response {
    let mut r = status(
        404,
        "NotFound",
        &format!("{PLURAL}.{GROUP} \"{name}\" not found"),
        0,
    );
    let mut body: Value = serde_json::from_slice(&r.body).expect("json");
    body["details"] = json!({"name": name, "group": GROUP, "kind": PLURAL});
    r.body = body.to_string().into_bytes();
    r
}

/// The discovery document of `secrets-store.csi.x-k8s.io/v1`.
pub(crate) fn resources() -> Value {
    crate::resource_list(
        &format!("{GROUP}/{VERSION}"),
        &[(
            PLURAL,
            "SecretProviderClass",
            true,
            &[
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ],
            &[],
        )],
    )
}

impl Cluster {
    /// Creates a SecretProviderClass from its JSON, as `kubectl create -f` would.
    pub fn add_secret_provider_class(&mut self, ns: &str, mut spc: Value) {
        self.rv += 1;
        self.uids += 1;
        let name = spc["metadata"]["name"].as_str().unwrap_or("").to_owned();
        spc["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
        spc["kind"] = json!("SecretProviderClass");
        let m = &mut spc["metadata"];
        m["namespace"] = json!(ns);
        m["generation"] = json!(1);
        m["uid"] = json!(format!("00000000-0000-4000-a000-{:012}", self.uids));
        m["resourceVersion"] = json!(self.rv.to_string());
        m["creationTimestamp"] = json!(Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        self.secretproviderclasses.insert(key(ns, &name), spc);
    }

    /// The SecretProviderClass as served.
    pub fn secret_provider_class(&self, ns: &str, name: &str) -> Option<Value> {
        self.secretproviderclasses.get(&key(ns, name)).cloned()
    }

    /// A Deployment (as [`Cluster::add_deployment`]) whose pod template mounts the
    /// Secrets Store CSI driver with SecretProviderClass `class`.
    pub fn add_csi_deployment(
        &mut self,
        ns: &str,
        name: &str,
        replicas: i32,
        class: &str,
    ) -> &mut Self {
        self.add_deployment(ns, name, replicas);
        self.mount_secret_provider_class(Res::Deployments, ns, name, class)
    }

    /// Gives the workload's pod template a `csi` volume of the driver for `class`,
    /// mounted read-only at `/mnt/secrets-store` in its container, as the driver's
    /// example pod does. The workload is created this way (no new generation).
    pub fn mount_secret_provider_class(
        &mut self,
        res: Res,
        ns: &str,
        name: &str,
        class: &str,
    ) -> &mut Self {
        let volume = format!("secrets-store-{class}");
        self.template_spec(res, ns, name, |spec| {
            push(
                &mut spec["volumes"],
                json!({"name": volume, "csi": {"driver": CSI_DRIVER, "readOnly": true,
                    "volumeAttributes": {"secretProviderClass": class}}}),
            );
            push(
                &mut spec["containers"][0]["volumeMounts"],
                json!({"name": volume, "mountPath": "/mnt/secrets-store", "readOnly": true}),
            );
        });
        self
    }

    /// Gives the workload's container the env var `env` from key `secret_key` of
    /// Secret `secret` (`valueFrom.secretKeyRef`), as created.
    pub fn env_from_secret(
        &mut self,
        res: Res,
        ns: &str,
        name: &str,
        env: &str,
        secret: &str,
        secret_key: &str,
    ) -> &mut Self {
        self.template_spec(res, ns, name, |spec| {
            push(
                &mut spec["containers"][0]["env"],
                json!({"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key}}}),
            );
        });
        self
    }

    /// The driver's DaemonSet `name` in `kube-system`, on one node, with the
    /// containers of the driver's manifest; `args` are the `secrets-store`
    /// container's (`--enable-secret-rotation=true`, `--rotation-poll-interval=30s`).
    pub fn add_csi_driver(&mut self, name: &str, args: &[&str]) -> &mut Self {
        self.add_daemonset(DRIVER_NAMESPACE, name, 1);
        let mut driver_args = vec![
            "--endpoint=$(CSI_ENDPOINT)".to_owned(),
            "--nodeid=$(KUBE_NODE_NAME)".to_owned(),
            "--provider-volume=/etc/kubernetes/secrets-store-csi-providers".to_owned(),
        ];
        driver_args.extend(args.iter().map(|a| a.to_string()));
        self.template_spec(Res::DaemonSets, DRIVER_NAMESPACE, name, |spec| {
            spec["serviceAccountName"] = json!("secrets-store-csi-driver");
            spec["containers"] = json!([
                {"name": "node-driver-registrar",
                 "image": "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0",
                 "args": ["--csi-address=/csi/csi.sock",
                     "--kubelet-registration-path=/var/lib/kubelet/plugins/csi-secrets-store/csi.sock"]},
                {"name": "secrets-store",
                 "image": "registry.k8s.io/csi-secrets-store/driver:v1.5.0",
                 "args": driver_args,
                 "securityContext": {"privileged": true}},
                {"name": "liveness-probe",
                 "image": "registry.k8s.io/sig-storage/livenessprobe:v2.15.0",
                 "args": ["--csi-address=/csi/csi.sock", "--probe-timeout=3s",
                     "--http-endpoint=0.0.0.0:9808", "-v=2"]}
            ]);
        });
        self
    }

    fn template_spec(&mut self, res: Res, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let w = self
            .works
            .get_mut(&work_key(res, ns, name))
            .unwrap_or_else(|| panic!("no {} {ns}/{name} in the fake", res.plural()));
        f(&mut w.obj["spec"]["template"]["spec"]);
    }

    pub(crate) fn get_secret_provider_class(&mut self, ns: &str, name: &str) -> Response {
        if let Some(denied) = self.authorize("get", GROUP, PLURAL, ns, Some(name)) {
            return denied;
        }
        custom::get(&self.secretproviderclasses, ns, name, not_found(name))
    }

    pub(crate) fn list_secret_provider_classes(&mut self, ns: &str) -> Response {
        if let Some(denied) = self.authorize("list", GROUP, PLURAL, ns, None) {
            return denied;
        }
        custom::list(
            &self.secretproviderclasses,
            ns,
            "SecretProviderClassList",
            &format!("{GROUP}/{VERSION}"),
            self.rv,
        )
    }
}

/// Appends to a JSON array, creating it when absent.
fn push(arr: &mut Value, item: Value) {
    if !arr.is_array() {
        *arr = json!([]);
    }
    if let Some(a) = arr.as_array_mut() {
        a.push(item);
    }
}
