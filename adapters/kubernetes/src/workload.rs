//! Which workloads a table restarts: `kind/name` references as kubectl writes them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The workload kinds `kubectl rollout restart` supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet];

    /// As kubectl prints it: `deployment`, `statefulset`, `daemonset`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
        }
    }

    /// The API resource (`apps` group): what RBAC rules name.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
        }
    }

    /// kubectl's names and short names for the kind.
    pub fn parse(s: &str) -> Option<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" | "deployment.apps" => Some(Kind::Deployment),
            "statefulset" | "statefulsets" | "sts" | "statefulset.apps" => Some(Kind::StatefulSet),
            "daemonset" | "daemonsets" | "ds" | "daemonset.apps" => Some(Kind::DaemonSet),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One workload: `deployment/api`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: Kind,
    pub name: String,
}

impl WorkloadRef {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        WorkloadRef {
            kind,
            name: name.into(),
        }
    }

    /// `TYPE/NAME` as in `kubectl rollout restart deployment/api`.
    pub fn parse(s: &str) -> Result<WorkloadRef, String> {
        let (kind, name) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not TYPE/NAME (e.g. \"deployment/api\")"))?;
        let kind = Kind::parse(kind).ok_or_else(|| {
            format!("{s:?}: {kind:?} is not deployment, statefulset or daemonset")
        })?;
        check_name(name)?;
        Ok(WorkloadRef::new(kind, name))
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// An object name: a DNS-1123 subdomain, as the API server requires.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Kubernetes object name (lower-case letters, digits, '-' and '.')"
        ))
    }
}

/// A namespace: a DNS-1123 label.
pub fn check_namespace(ns: &str) -> Result<(), String> {
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && ns.starts_with(|c: char| c.is_ascii_alphanumeric())
        && ns.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{ns:?} is not a namespace name (lower-case letters, digits and '-', at most 63)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_kubectl() {
        assert_eq!(
            WorkloadRef::parse("deploy/api").unwrap(),
            WorkloadRef::new(Kind::Deployment, "api")
        );
        assert_eq!(
            WorkloadRef::parse("sts/db-0.x").unwrap().kind,
            Kind::StatefulSet
        );
        assert_eq!(
            WorkloadRef::parse("daemonsets/agent").unwrap().to_string(),
            "daemonset/agent"
        );
        assert!(WorkloadRef::parse("api").unwrap_err().contains("TYPE/NAME"));
        assert!(WorkloadRef::parse("job/x")
            .unwrap_err()
            .contains("daemonset"));
        assert!(WorkloadRef::parse("deployment/Api").is_err());
        assert!(check_namespace("my-app").is_ok());
        assert!(check_namespace("my.app").is_err());
    }
}
