//! `kubectl rollout status`, rule by rule (kubectl's `rollout_status.go`), made
//! stricter where kubectl would call a rollout done while old pods still serve.
//!
//! Every rule starts with `observedGeneration ≥` the generation our patch produced:
//! until the controller has seen our template, the status (even a complete one) is
//! the previous rollout's and says nothing about this one.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};

/// Where one workload's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done(String),
    Waiting(String),
    Failed(String),
}

impl Progress {
    pub fn text(&self) -> &str {
        match self {
            Progress::Done(t) | Progress::Waiting(t) | Progress::Failed(t) => t,
        }
    }
}

fn observed(generation: Option<i64>, observed: Option<i64>, since: i64) -> Option<Progress> {
    let generation = generation.unwrap_or(0).max(since);
    let observed = observed.unwrap_or(0);
    (observed < generation).then(|| {
        Progress::Waiting(format!(
            "waiting for the spec update to be observed (generation {generation}, observed {observed})"
        ))
    })
}

/// kubectl's DeploymentStatusViewer. `since`: the generation our patch produced.
pub fn deployment(d: &Deployment, since: i64) -> Progress {
    let name = d.metadata.name.as_deref().unwrap_or("");
    let spec = d.spec.as_ref();
    let status = d.status.clone().unwrap_or_default();
    if let Some(w) = observed(d.metadata.generation, status.observed_generation, since) {
        return w;
    }
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
    {
        if c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return Progress::Failed(format!(
                "deployment {name:?} exceeded its progress deadline{}",
                c.message
                    .as_deref()
                    .map(|m| format!(": {}", crate::error::truncate(m, 200)))
                    .unwrap_or_default()
            ));
        }
    }
    if spec.and_then(|s| s.paused) == Some(true) {
        // A paused Deployment never progresses, and its deadline is not evaluated
        // either: waiting would only end at our own timeout.
        return Progress::Failed(format!(
            "deployment {name:?} was paused during the rollout (kubectl rollout resume deployment/{name})"
        ));
    }
    let want = spec.and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    if updated < want {
        return Progress::Waiting(format!(
            "{updated} out of {want} new replicas have been updated"
        ));
    }
    if total > updated {
        return Progress::Waiting(format!(
            "{} old replicas are pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Progress::Waiting(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    if ready < want {
        return Progress::Waiting(format!("{ready} of {want} replicas are ready"));
    }
    Progress::Done(format!(
        "deployment {name:?} successfully rolled out ({updated}/{want} updated and available)"
    ))
}

/// Why a StatefulSet's rollout cannot replace every pod, if it cannot.
pub fn statefulset_refusal(s: &StatefulSet) -> Option<String> {
    let name = s.metadata.name.as_deref().unwrap_or("");
    let strategy = s.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let kind = strategy
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate");
    if kind != "RollingUpdate" {
        return Some(format!(
            "statefulset/{name} uses the {kind} update strategy: a restart changes no pod until \
             each is deleted by hand; switch it to RollingUpdate"
        ));
    }
    let partition = strategy
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    (partition > 0).then(|| {
        format!(
            "statefulset/{name} has partition {partition}: pods with an ordinal below it would \
             keep the old passphrase; set it to 0 first (kubectl patch statefulset {name} -p \
             '{{\"spec\":{{\"updateStrategy\":{{\"rollingUpdate\":{{\"partition\":0}}}}}}}}')"
        )
    })
}

/// kubectl's StatefulSetStatusViewer, with the partition refused (see
/// [`statefulset_refusal`]) and the revision required to be complete: done means
/// every pod runs the update revision.
pub fn statefulset(s: &StatefulSet, since: i64) -> Progress {
    let name = s.metadata.name.as_deref().unwrap_or("");
    if let Some(r) = statefulset_refusal(s) {
        return Progress::Failed(r);
    }
    let status = s.status.clone().unwrap_or_default();
    if let Some(w) = observed(s.metadata.generation, status.observed_generation, since) {
        return w;
    }
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let update_rev = status.update_revision.clone().unwrap_or_default();
    if ready < want {
        return Progress::Waiting(format!("waiting for {} pods to be ready", want - ready));
    }
    if updated < want {
        return Progress::Waiting(format!(
            "{updated} out of {want} new pods have been updated"
        ));
    }
    if status.current_revision.as_deref() != Some(update_rev.as_str()) {
        return Progress::Waiting(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {update_rev}"
        ));
    }
    if status.replicas > want {
        return Progress::Waiting(format!(
            "{} old pods are pending termination",
            status.replicas - want
        ));
    }
    if status.available_replicas.is_some_and(|a| a < want) {
        return Progress::Waiting(format!(
            "{} of {want} pods are available",
            status.available_replicas.unwrap_or(0)
        ));
    }
    Progress::Done(format!(
        "statefulset {name:?} rolling update complete {want} pods at revision {update_rev}"
    ))
}

/// Why a DaemonSet's rollout cannot replace every pod, if it cannot.
pub fn daemonset_refusal(d: &DaemonSet) -> Option<String> {
    let name = d.metadata.name.as_deref().unwrap_or("");
    let kind = d
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate");
    (kind != "RollingUpdate").then(|| {
        format!(
            "daemonset/{name} uses the {kind} update strategy: a restart changes no pod until \
             each is deleted by hand; switch it to RollingUpdate"
        )
    })
}

/// kubectl's DaemonSetStatusViewer, plus ready and scheduled counts.
pub fn daemonset(d: &DaemonSet, since: i64) -> Progress {
    let name = d.metadata.name.as_deref().unwrap_or("");
    if let Some(r) = daemonset_refusal(d) {
        return Progress::Failed(r);
    }
    let status = d.status.clone().unwrap_or_default();
    if let Some(w) = observed(d.metadata.generation, status.observed_generation, since) {
        return w;
    }
    let want = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < want {
        return Progress::Waiting(format!(
            "{updated} out of {want} new pods have been updated"
        ));
    }
    if available < want {
        return Progress::Waiting(format!("{available} of {want} updated pods are available"));
    }
    if status.number_ready < want || status.current_number_scheduled != want {
        return Progress::Waiting(format!(
            "{} of {want} pods are ready on {} node(s)",
            status.number_ready, status.current_number_scheduled
        ));
    }
    Progress::Done(format!("daemon set {name:?} successfully rolled out"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "generation": generation},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": []}}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn the_previous_rollouts_status_is_not_this_one() {
        // Right after our patch: generation 5, the status still describes generation 4
        // and says complete.
        let complete = json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]});
        assert!(matches!(
            deployment(&deploy(5, complete.clone()), 5),
            Progress::Waiting(_)
        ));
        // Our patch produced generation 5; the object read back (from a stale cache)
        // still says 4: not done either.
        assert!(matches!(
            deployment(&deploy(4, complete.clone()), 5),
            Progress::Waiting(_)
        ));
        let mut now = complete;
        now["observedGeneration"] = json!(5);
        assert!(matches!(deployment(&deploy(5, now), 5), Progress::Done(_)));
    }

    #[test]
    fn deployment_rules_in_kubectls_order() {
        let st = |u, r, a, reason: &str| {
            json!({"observedGeneration": 2, "replicas": r, "updatedReplicas": u,
                "readyReplicas": a, "availableReplicas": a,
                "conditions": [{"type": "Progressing", "status": "True", "reason": reason,
                    "message": "ReplicaSet \"api-1\" is progressing."}]})
        };
        let p = deployment(&deploy(2, st(1, 4, 3, "ReplicaSetUpdated")), 2);
        assert_eq!(
            p,
            Progress::Waiting("1 out of 3 new replicas have been updated".into())
        );
        let p = deployment(&deploy(2, st(3, 4, 3, "ReplicaSetUpdated")), 2);
        assert_eq!(
            p,
            Progress::Waiting("1 old replicas are pending termination".into())
        );
        let p = deployment(&deploy(2, st(3, 3, 2, "ReplicaSetUpdated")), 2);
        assert_eq!(
            p,
            Progress::Waiting("2 of 3 updated replicas are available".into())
        );
        let p = deployment(&deploy(2, st(1, 4, 3, "ProgressDeadlineExceeded")), 2);
        assert!(
            matches!(&p, Progress::Failed(m) if m.contains("exceeded its progress deadline")),
            "{p:?}"
        );
    }

    #[test]
    fn statefulset_partitions_and_revisions() {
        let sts = |partition: i32, status: serde_json::Value| -> StatefulSet {
            serde_json::from_value(json!({
                "metadata": {"name": "db", "generation": 3},
                "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}},
                "status": status
            }))
            .unwrap()
        };
        let done = json!({"observedGeneration": 3, "replicas": 2, "readyReplicas": 2,
            "updatedReplicas": 2, "currentRevision": "db-2", "updateRevision": "db-2"});
        assert!(matches!(
            statefulset(&sts(0, done.clone()), 3),
            Progress::Done(_)
        ));
        assert!(statefulset_refusal(&sts(1, done.clone()))
            .unwrap()
            .contains("partition 1"));
        let mut mid = done;
        mid["currentRevision"] = json!("db-1");
        assert!(matches!(statefulset(&sts(0, mid), 3), Progress::Waiting(_)));
    }

    #[test]
    fn daemonset_counts() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": []}}},
            "status": {"observedGeneration": 2, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                "numberMisscheduled": 0, "numberReady": 3, "updatedNumberScheduled": 2, "numberAvailable": 3}
        }))
        .unwrap();
        assert_eq!(
            daemonset(&ds, 2),
            Progress::Waiting("2 out of 3 new pods have been updated".into())
        );
    }
}
