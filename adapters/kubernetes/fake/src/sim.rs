//! The workloads and the simulated controllers: a rollout replaces pods one step
//! per tick, the way the Deployment, StatefulSet and DaemonSet controllers do
//! (surge first for Deployments, one ordinal at a time from the highest for
//! StatefulSets, node by node for DaemonSets), unless its script says otherwise.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, Deployment, DeploymentCondition, DeploymentSpec,
    DeploymentStatus, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use std::collections::BTreeMap;

/// How a workload's next rollout goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// Pods are replaced step by step until the rollout completes.
    Healthy,
    /// The controller observes the new spec and starts one pod that never gets ready.
    Stall,
    /// As `Stall`; then (Deployments) the progress deadline passes: `Progressing`
    /// becomes False with reason `ProgressDeadlineExceeded`.
    ProgressDeadline,
    /// New pods start and crash: `CrashLoopBackOff`, restarts counting up, this log.
    CrashLoop { log: String },
    /// New pods wait in this state (`ImagePullBackOff`, `CreateContainerConfigError`).
    PodWaiting { reason: String, message: String },
}

/// The three restartable kinds, by their API resource name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Res {
    Deployments,
    StatefulSets,
    DaemonSets,
}

impl Res {
    pub fn parse(s: &str) -> Option<Res> {
        match s {
            "deployments" => Some(Res::Deployments),
            "statefulsets" => Some(Res::StatefulSets),
            "daemonsets" => Some(Res::DaemonSets),
            _ => None,
        }
    }
    pub fn plural(self) -> &'static str {
        match self {
            Res::Deployments => "deployments",
            Res::StatefulSets => "statefulsets",
            Res::DaemonSets => "daemonsets",
        }
    }
    pub fn kind(self) -> &'static str {
        match self {
            Res::Deployments => "Deployment",
            Res::StatefulSets => "StatefulSet",
            Res::DaemonSets => "DaemonSet",
        }
    }
}

/// A pod's container state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PodState {
    Running,
    Creating,
    Waiting { reason: String, message: String },
    Crashing { restarts: i32 },
}

#[derive(Debug, Clone)]
struct Slot {
    pod: String,
    rev: u32,
    ready: bool,
    state: PodState,
}

/// One workload: its API object, the pod template annotations of each revision, and
/// the pods it runs.
#[derive(Debug, Clone)]
pub struct Work {
    pub res: Res,
    pub obj: Value,
    pub script: Script,
    /// Template annotations per revision (index = revision - 1).
    revisions: Vec<BTreeMap<String, String>>,
    slots: Vec<Slot>,
    current_rev: u32,
    update_rev: u32,
    /// Ticks since the controller observed the current generation, while rolling.
    rolling: Option<u32>,
    pod_seq: u32,
    /// DaemonSets: how many nodes run one pod each.
    nodes: i32,
    pub logs: BTreeMap<String, String>,
}

fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), name.to_owned())])
}

fn template(name: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(name)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(format!("registry.invalid/{name}:1")),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.to_owned()),
        uid: Some(format!("uid-{ns}-{name}")),
        generation: Some(1),
        creation_timestamp: Some(Time(Timestamp::UNIX_EPOCH)),
        labels: Some(labels(name)),
        ..Default::default()
    }
}

fn short_hash(name: &str, rev: u32) -> String {
    // FNV-1a: stable across runs, like the controllers' template hashes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain(rev.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| alphabet[((h >> (i * 6)) % alphabet.len() as u64) as usize] as char)
        .collect()
}

impl Work {
    pub fn new(res: Res, ns: &str, name: &str, replicas: i32) -> Work {
        let selector = LabelSelector {
            match_labels: Some(labels(name)),
            ..Default::default()
        };
        let obj = match res {
            Res::Deployments => serde_json::to_value(Deployment {
                metadata: meta(ns, name),
                spec: Some(DeploymentSpec {
                    replicas: Some(replicas),
                    selector,
                    template: template(name),
                    progress_deadline_seconds: Some(600),
                    ..Default::default()
                }),
                status: None,
            }),
            Res::StatefulSets => serde_json::to_value(StatefulSet {
                metadata: meta(ns, name),
                spec: Some(StatefulSetSpec {
                    replicas: Some(replicas),
                    selector,
                    service_name: Some(name.to_owned()),
                    template: template(name),
                    update_strategy: Some(k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy {
                        type_: Some("RollingUpdate".into()),
                        rolling_update: Some(
                            k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy {
                                partition: Some(0),
                                ..Default::default()
                            },
                        ),
                    }),
                    ..Default::default()
                }),
                status: None,
            }),
            Res::DaemonSets => serde_json::to_value(DaemonSet {
                metadata: meta(ns, name),
                spec: Some(DaemonSetSpec {
                    selector,
                    template: template(name),
                    update_strategy: Some(k8s_openapi::api::apps::v1::DaemonSetUpdateStrategy {
                        type_: Some("RollingUpdate".into()),
                        rolling_update: None,
                    }),
                    ..Default::default()
                }),
                status: None,
            }),
        }
        .expect("serializable");
        let mut w = Work {
            res,
            obj,
            script: Script::Healthy,
            revisions: vec![BTreeMap::new()],
            slots: Vec::new(),
            current_rev: 1,
            update_rev: 1,
            rolling: None,
            pod_seq: 0,
            nodes: if res == Res::DaemonSets { replicas } else { 0 },
            logs: BTreeMap::new(),
        };
        for i in 0..replicas.max(0) {
            let pod = w.pod_name(1, i as usize);
            w.slots.push(Slot {
                pod,
                rev: 1,
                ready: true,
                state: PodState::Running,
            });
        }
        w.observe();
        w.recompute(true);
        w
    }

    pub fn name(&self) -> String {
        self.obj["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn namespace(&self) -> String {
        self.obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn generation(&self) -> i64 {
        self.obj["metadata"]["generation"].as_i64().unwrap_or(1)
    }

    fn desired(&self) -> i32 {
        match self.res {
            Res::DaemonSets => self.nodes,
            _ => self.obj["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
        }
    }

    pub fn paused(&self) -> bool {
        self.obj["spec"]["paused"].as_bool() == Some(true)
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.obj["spec"]["paused"] = Value::Bool(paused);
        self.recompute(false);
    }

    fn template_annotations(&self) -> BTreeMap<String, String> {
        serde_json::from_value(self.obj["spec"]["template"]["metadata"]["annotations"].clone())
            .unwrap_or_default()
    }

    fn revision_name(&self, rev: u32) -> String {
        format!("{}-{}", self.name(), short_hash(&self.name(), rev))
    }

    fn pod_name(&mut self, rev: u32, ordinal: usize) -> String {
        match self.res {
            Res::StatefulSets => format!("{}-{ordinal}", self.name()),
            _ => {
                self.pod_seq += 1;
                let suffix: String = short_hash(&self.name(), 1000 + self.pod_seq)
                    .chars()
                    .take(5)
                    .collect();
                match self.res {
                    Res::Deployments => format!("{}-{suffix}", self.revision_name(rev)),
                    _ => format!("{}-{suffix}", self.name()),
                }
            }
        }
    }

    /// After a change of the object by a client: a new template is a new revision
    /// and a new generation; the controller starts rolling unless paused.
    /// Returns whether the generation changed.
    pub fn spec_changed(&mut self, before: &Value) -> bool {
        if before["spec"] == self.obj["spec"] {
            return false;
        }
        let generation = self.generation() + 1;
        self.obj["metadata"]["generation"] = generation.into();
        if before["spec"]["template"] != self.obj["spec"]["template"] {
            self.revisions.push(self.template_annotations());
            self.update_rev = self.revisions.len() as u32;
            self.rolling = None;
        }
        true
    }

    /// Marks the current generation observed.
    fn observe(&mut self) {
        let g = self.generation();
        self.obj["status"]["observedGeneration"] = g.into();
    }

    fn observed(&self) -> bool {
        self.obj["status"]["observedGeneration"].as_i64() == Some(self.generation())
    }

    /// One controller step. Returns whether the object changed (an event is due).
    pub fn tick(&mut self) -> bool {
        for s in &mut self.slots {
            if let PodState::Crashing { restarts } = &mut s.state {
                *restarts += 1;
            }
        }
        if !self.observed() {
            self.observe();
            if self.update_rev != self.current_rev && !self.paused() {
                self.rolling = Some(0);
                self.set_progressing("True", "ReplicaSetUpdated", "is progressing.");
            } else if self.paused() {
                self.set_progressing("Unknown", "DeploymentPaused", "Deployment is paused");
            }
            self.recompute(false);
            return true;
        }
        let Some(ticks) = self.rolling else {
            return false;
        };
        if self.paused() {
            return false;
        }
        self.rolling = Some(ticks + 1);
        let changed = match self.script.clone() {
            Script::Healthy => self.step_healthy(),
            Script::Stall => self.step_broken(PodState::Creating),
            Script::ProgressDeadline => {
                let c = self.step_broken(PodState::Creating);
                if ticks == 4 && self.res == Res::Deployments {
                    self.set_progressing(
                        "False",
                        "ProgressDeadlineExceeded",
                        "has timed out progressing.",
                    );
                    true
                } else {
                    c
                }
            }
            Script::CrashLoop { log } => {
                let c = self.step_broken(PodState::Crashing { restarts: 0 });
                for s in self.slots.iter().filter(|s| s.rev == self.update_rev) {
                    self.logs.insert(s.pod.clone(), log.clone());
                }
                c
            }
            Script::PodWaiting { reason, message } => {
                self.step_broken(PodState::Waiting { reason, message })
            }
        };
        if changed {
            self.recompute(false);
        }
        changed
    }

    fn new_slot(&mut self, ordinal: usize, state: PodState) -> Slot {
        let pod = self.pod_name(self.update_rev, ordinal);
        Slot {
            pod,
            rev: self.update_rev,
            ready: state == PodState::Running,
            state,
        }
    }

    /// Replaces one pod with a new one in `state`, once; then nothing moves.
    fn step_broken(&mut self, state: PodState) -> bool {
        if self.slots.iter().any(|s| s.rev == self.update_rev) {
            return false;
        }
        let ordinal = self.slots.len().saturating_sub(1);
        let slot = self.new_slot(ordinal, state);
        match self.res {
            Res::Deployments => self.slots.push(slot),
            _ => {
                if let Some(last) = self.slots.last_mut() {
                    *last = slot;
                } else {
                    self.slots.push(slot);
                }
            }
        }
        true
    }

    fn step_healthy(&mut self) -> bool {
        let want = self.desired().max(0) as usize;
        let update = self.update_rev;
        if let Some(s) = self.slots.iter_mut().find(|s| s.rev == update && !s.ready) {
            s.ready = true;
            s.state = PodState::Running;
            if self.res == Res::Deployments {
                if let Some(i) = self.slots.iter().position(|s| s.rev != update) {
                    self.slots.remove(i);
                }
            }
            return true;
        }
        let new = self.slots.iter().filter(|s| s.rev == update).count();
        match self.res {
            Res::Deployments => {
                if new < want {
                    let slot = self.new_slot(new, PodState::Creating);
                    self.slots.push(slot);
                    return true;
                }
                if let Some(i) = self.slots.iter().position(|s| s.rev != update) {
                    self.slots.remove(i);
                    return true;
                }
            }
            _ => {
                // Highest ordinal first, one at a time.
                if let Some(i) = self.slots.iter().rposition(|s| s.rev != update) {
                    let slot = self.new_slot(i, PodState::Creating);
                    self.slots[i] = slot;
                    return true;
                }
            }
        }
        if self.current_rev != update {
            self.current_rev = update;
            self.rolling = None;
            self.set_progressing(
                "True",
                "NewReplicaSetAvailable",
                "has successfully progressed.",
            );
            return true;
        }
        false
    }

    fn set_progressing(&mut self, status: &str, reason: &str, what: &str) {
        if self.res != Res::Deployments {
            return;
        }
        let now = Time(Timestamp::now());
        let message = if reason == "DeploymentPaused" {
            what.to_owned()
        } else {
            format!(
                "ReplicaSet \"{}\" {what}",
                self.revision_name(self.update_rev)
            )
        };
        let cond = DeploymentCondition {
            type_: "Progressing".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now),
        };
        let mut conds: Vec<DeploymentCondition> =
            serde_json::from_value(self.obj["status"]["conditions"].clone()).unwrap_or_default();
        conds.retain(|c| c.type_ != "Progressing");
        conds.push(cond);
        self.obj["status"]["conditions"] = serde_json::to_value(conds).expect("serializable");
    }

    /// The status from the pods, typed, so every field name is the API's.
    fn recompute(&mut self, initial: bool) {
        let want = self.desired();
        let total = self.slots.len() as i32;
        let ready = self.slots.iter().filter(|s| s.ready).count() as i32;
        let updated = self
            .slots
            .iter()
            .filter(|s| s.rev == self.update_rev)
            .count() as i32;
        let current = self
            .slots
            .iter()
            .filter(|s| s.rev == self.current_rev)
            .count() as i32;
        let observed = self.obj["status"]["observedGeneration"].as_i64();
        let conditions = self.obj["status"]["conditions"].clone();
        let status = match self.res {
            Res::Deployments => {
                let mut conds: Vec<DeploymentCondition> =
                    serde_json::from_value(conditions).unwrap_or_default();
                conds.retain(|c| c.type_ != "Available");
                let now = Time(Timestamp::now());
                let (st, reason) = if ready >= want {
                    ("True", "MinimumReplicasAvailable")
                } else {
                    ("False", "MinimumReplicasUnavailable")
                };
                conds.insert(
                    0,
                    DeploymentCondition {
                        type_: "Available".into(),
                        status: st.into(),
                        reason: Some(reason.into()),
                        message: Some(if st == "True" {
                            "Deployment has minimum availability.".into()
                        } else {
                            "Deployment does not have minimum availability.".into()
                        }),
                        last_update_time: Some(now.clone()),
                        last_transition_time: Some(now),
                    },
                );
                if initial {
                    self.obj["status"]["conditions"] = Value::Null;
                }
                serde_json::to_value(DeploymentStatus {
                    observed_generation: observed,
                    replicas: Some(total),
                    updated_replicas: Some(updated),
                    ready_replicas: Some(ready),
                    available_replicas: Some(ready),
                    unavailable_replicas: Some((want - ready).max(0)).filter(|n| *n > 0),
                    conditions: Some(conds),
                    ..Default::default()
                })
            }
            Res::StatefulSets => serde_json::to_value(StatefulSetStatus {
                observed_generation: observed,
                replicas: total,
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                current_replicas: Some(current),
                updated_replicas: Some(updated),
                current_revision: Some(self.revision_name(self.current_rev)),
                update_revision: Some(self.revision_name(self.update_rev)),
                collision_count: Some(0),
                ..Default::default()
            }),
            Res::DaemonSets => serde_json::to_value(DaemonSetStatus {
                observed_generation: observed,
                desired_number_scheduled: want,
                current_number_scheduled: total,
                number_misscheduled: 0,
                number_ready: ready,
                number_available: Some(ready),
                number_unavailable: Some((want - ready).max(0)).filter(|n| *n > 0),
                updated_number_scheduled: Some(updated),
                ..Default::default()
            }),
        }
        .expect("serializable");
        self.obj["status"] = status;
        if initial && self.res == Res::Deployments {
            self.set_progressing(
                "True",
                "NewReplicaSetAvailable",
                "has successfully progressed.",
            );
        }
    }

    /// The pods, as the API serves them.
    pub fn pods(&self, resource_version: u64) -> Vec<Pod> {
        let owner_kind = match self.res {
            Res::Deployments => "ReplicaSet",
            Res::StatefulSets => "StatefulSet",
            Res::DaemonSets => "DaemonSet",
        };
        self.slots
            .iter()
            .map(|s| {
                let mut labels = labels(&self.name());
                let hash_key = match self.res {
                    Res::Deployments => "pod-template-hash",
                    _ => "controller-revision-hash",
                };
                labels.insert(hash_key.into(), short_hash(&self.name(), s.rev));
                let annotations = self.revisions[(s.rev - 1) as usize].clone();
                let owner = match self.res {
                    Res::Deployments => self.revision_name(s.rev),
                    _ => self.name(),
                };
                let (state, last_state, restarts) = match &s.state {
                    PodState::Running => (
                        ContainerState {
                            running: Some(ContainerStateRunning {
                                started_at: Some(Time(Timestamp::UNIX_EPOCH)),
                            }),
                            ..Default::default()
                        },
                        None,
                        0,
                    ),
                    PodState::Creating => (waiting("ContainerCreating", ""), None, 0),
                    PodState::Waiting { reason, message } => (waiting(reason, message), None, 0),
                    PodState::Crashing { restarts } => (
                        waiting(
                            "CrashLoopBackOff",
                            &format!("back-off 40s restarting failed container=app pod={}", s.pod),
                        ),
                        Some(ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: 1,
                                reason: Some("Error".into()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        (*restarts).max(1),
                    ),
                };
                Pod {
                    metadata: ObjectMeta {
                        name: Some(s.pod.clone()),
                        namespace: Some(self.namespace()),
                        uid: Some(format!("uid-pod-{}", s.pod)),
                        resource_version: Some(resource_version.to_string()),
                        labels: Some(labels),
                        annotations: Some(annotations).filter(|a| !a.is_empty()),
                        owner_references: Some(vec![OwnerReference {
                            api_version: "apps/v1".into(),
                            kind: owner_kind.into(),
                            name: owner,
                            uid: format!("uid-owner-{}", self.name()),
                            controller: Some(true),
                            block_owner_deletion: Some(true),
                        }]),
                        ..Default::default()
                    },
                    spec: self.obj["spec"]["template"]["spec"]
                        .clone()
                        .pipe(|v| serde_json::from_value::<PodSpec>(v).ok()),
                    status: Some(PodStatus {
                        phase: Some(if s.ready { "Running" } else { "Pending" }.into()),
                        conditions: Some(vec![PodCondition {
                            type_: "Ready".into(),
                            status: if s.ready { "True" } else { "False" }.into(),
                            ..Default::default()
                        }]),
                        container_statuses: Some(vec![ContainerStatus {
                            name: "app".into(),
                            image: format!("registry.invalid/{}:1", self.name()),
                            image_id: String::new(),
                            ready: s.ready,
                            restart_count: restarts,
                            started: Some(s.ready),
                            state: Some(state),
                            last_state,
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                }
            })
            .collect()
    }

    /// The pod's log and whether it has a terminated container to read `previous`.
    pub fn log(&self, pod: &str) -> Option<(String, bool)> {
        let slot = self.slots.iter().find(|s| s.pod == pod)?;
        let crashed = matches!(slot.state, PodState::Crashing { .. });
        Some((
            self.logs
                .get(pod)
                .cloned()
                .unwrap_or_else(|| "starting\nlistening on :8080\n".to_owned()),
            crashed,
        ))
    }
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()).filter(|m| !m.is_empty()),
        }),
        ..Default::default()
    }
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}
