//! The plan tables of this crate's adapters, `[[store]] type = "vps_file"` and
//! `[[restart]] type = "systemd"`: what the plan can say (including the SSH options
//! and the systemd poll interval), checked statically, and turned into the
//! runtime configs.

use crate::config::{
    HostKeyPolicy, HostSpec, RestartMode, SshOptions, SystemdConfig, Transport, VpsFileConfig,
};
use crate::{SystemdRestarter, VpsFileStore};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, BuildContext, FileMode, Finding, Restarter, RestarterConfig, Result, SecretStore,
    StoreConfig,
};

/// A host: `"name"` (an address or `~/.ssh/config` alias) or a table.
#[derive(
    Debug, Clone, PartialEq, Eq, Deserialize, Serialize, vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(untagged)]
pub enum HostEntry {
    Name(String),
    Spec(HostTable),
}

#[derive(
    Debug, Clone, PartialEq, Eq, Deserialize, Serialize, vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct HostTable {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
}

impl HostEntry {
    pub fn spec(&self) -> HostSpec {
        match self {
            HostEntry::Name(n) => HostSpec::new(n.clone()),
            HostEntry::Spec(t) => HostSpec {
                host: t.host.clone(),
                port: t.port,
                user: t.user.clone(),
                identity_file: t.identity_file.clone(),
                known_hosts_file: t.known_hosts_file.clone(),
            },
        }
    }
}

/// `ssh = { … }`: the SSH transport's options, shared by the table's hosts.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Deserialize,
    Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct SshTable {
    /// `"strict"` (default: the key must be in known_hosts) or `"accept_new"`.
    pub host_key_policy: Option<HostKeyPolicyName>,
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub command_timeout: Option<Duration>,
    /// How long an `ssh` master outlives its last use (`ControlPersist`, default
    /// `"10s"`): short, so a killed run leaves no ssh processes or remote sessions
    /// behind for long; a living run holds its masters open however long it waits.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Duration>,
    /// `-F FILE` instead of `~/.ssh/config`.
    pub config_file: Option<PathBuf>,
    /// Where control sockets go (keep the path short).
    pub control_directory: Option<PathBuf>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Deserialize,
    Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(rename_all = "snake_case")]
pub enum HostKeyPolicyName {
    Strict,
    AcceptNew,
}

impl SshTable {
    pub fn options(&self) -> SshOptions {
        let d = SshOptions::default();
        SshOptions {
            host_key_policy: match self.host_key_policy {
                Some(HostKeyPolicyName::AcceptNew) => HostKeyPolicy::AcceptNew,
                _ => HostKeyPolicy::Strict,
            },
            connect_timeout: self.connect_timeout.unwrap_or(d.connect_timeout),
            command_timeout: self.command_timeout.unwrap_or(d.command_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            config_file: self.config_file.clone(),
            control_directory: self.control_directory.clone(),
        }
    }

    fn check(&self, out: &mut Vec<Finding>) {
        for (k, v) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if v.is_some_and(|d| d.is_zero()) {
                out.push(Finding::error(
                    Some("ssh"),
                    format!("ssh.{k} must be positive"),
                ));
            }
        }
    }
}

fn check_hosts(hosts: &[HostEntry], out: &mut Vec<Finding>) {
    let specs: Vec<HostSpec> = hosts.iter().map(HostEntry::spec).collect();
    if let Err(e) = crate::shell::check_hosts(&specs) {
        out.push(Finding::error(Some("hosts"), e.message().to_owned()));
    }
}

fn host_targets(hosts: &[HostEntry]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| {
            let s = h.spec();
            format!("{}:{}", s.host, s.port.unwrap_or(22))
        })
        .collect()
}

/// `[[store]] type = "vps_file"`.
#[derive(
    Debug, Clone, PartialEq, Eq, Deserialize, Serialize, vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct VpsFileTable {
    pub hosts: Vec<HostEntry>,
    /// Absolute path, the same on every host.
    pub path: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    #[serde(default)]
    pub mode: FileMode,
    /// `sudo -n /bin/sh -c` (a NOPASSWD rule is needed).
    #[serde(default)]
    pub sudo: bool,
    #[serde(default)]
    pub ssh: SshTable,
}

impl VpsFileTable {
    pub fn config(&self) -> VpsFileConfig {
        VpsFileConfig {
            owner: self.owner.clone(),
            group: self.group.clone(),
            mode: Some(self.mode.bits()),
            sudo: self.sudo,
            ssh: self.ssh.options(),
            ..VpsFileConfig::new(
                Transport::Ssh(self.hosts.iter().map(HostEntry::spec).collect()),
                self.path.clone(),
            )
        }
    }
}

#[async_trait]
impl StoreConfig for VpsFileTable {
    fn check(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self.mode.check("mode").into_iter().collect();
        if self.hosts.is_empty() {
            out.push(Finding::error(
                Some("hosts"),
                "vps_file needs at least one host",
            ));
        } else {
            check_hosts(&self.hosts, &mut out);
        }
        if let Err(e) = crate::vps_file::validate_path(&self.path) {
            out.push(Finding::error(Some("path"), e.message().to_owned()));
        }
        for (k, v) in [("owner", &self.owner), ("group", &self.group)] {
            if let Some(v) = v {
                if !crate::vps_file::valid_account(v) {
                    out.push(Finding::error(Some(k), format!("invalid {k} {v:?}")));
                }
            }
        }
        self.ssh.check(&mut out);
        out
    }

    fn identity(&self) -> String {
        format!(
            "vps_file:{}@{}",
            self.path,
            host_targets(&self.hosts).join(",")
        )
    }

    /// One per host: the same file on one host in two tables is one file.
    fn targets(&self) -> Vec<String> {
        host_targets(&self.hosts)
            .into_iter()
            .map(|h| format!("vps_file:{}@{h}", self.path))
            .collect()
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn SecretStore>> {
        Ok(Arc::new(VpsFileStore::new(self.config())?))
    }
}

/// `mode = "parallel" | "rolling"`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Deserialize,
    Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(rename_all = "snake_case")]
pub enum SystemdMode {
    #[default]
    Parallel,
    Rolling,
}

/// `[[restart]] type = "systemd"`.
#[derive(
    Debug, Clone, PartialEq, Eq, Deserialize, Serialize, vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct SystemdTable {
    #[serde(default)]
    pub hosts: Vec<HostEntry>,
    /// `systemctl` on this machine instead of over SSH.
    #[serde(default)]
    pub local: bool,
    /// Unit names or globs.
    pub units: Vec<String>,
    #[serde(default)]
    pub mode: SystemdMode,
    /// Units per batch in rolling mode (default 1).
    pub batch_size: Option<usize>,
    /// Between rolling batches (default none).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub pause: Option<Duration>,
    /// How long a restarted unit must stay up unchanged (default 10 s).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub settle: Option<Duration>,
    /// How often unit state is polled (default 500 ms).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub poll_interval: Option<Duration>,
    /// Journal lines quoted for a failed unit (default 10).
    pub journal_lines: Option<usize>,
    #[serde(default)]
    pub sudo: bool,
    /// The whole rollout (default 10 minutes).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub ssh: SshTable,
}

impl SystemdTable {
    pub fn config(&self) -> SystemdConfig {
        let transport = if self.local {
            Transport::Local
        } else {
            Transport::Ssh(self.hosts.iter().map(HostEntry::spec).collect())
        };
        let d = SystemdConfig::new(transport, self.units.clone());
        SystemdConfig {
            mode: match self.mode {
                SystemdMode::Rolling => RestartMode::Rolling {
                    batch_size: self.batch_size.unwrap_or(1),
                    pause: self.pause.unwrap_or_default(),
                },
                SystemdMode::Parallel => RestartMode::Parallel,
            },
            settle: self.settle.unwrap_or(d.settle),
            poll_interval: self.poll_interval.unwrap_or(d.poll_interval),
            journal_lines: self.journal_lines.unwrap_or(d.journal_lines),
            sudo: self.sudo,
            ssh: self.ssh.options(),
            ..d
        }
    }

    fn places(&self) -> Vec<String> {
        if self.local {
            vec!["localhost".to_owned()]
        } else {
            host_targets(&self.hosts)
        }
    }
}

#[async_trait]
impl RestarterConfig for SystemdTable {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.hosts.is_empty() != self.local {
            out.push(Finding::error(
                Some("hosts"),
                "systemd needs hosts = [...] or local = true (one of them)",
            ));
        } else if !self.local {
            check_hosts(&self.hosts, &mut out);
        }
        if self.units.is_empty() {
            out.push(Finding::error(
                Some("units"),
                "systemd needs at least one unit",
            ));
        }
        if self.batch_size == Some(0) {
            out.push(Finding::error(
                Some("batch_size"),
                "batch_size must be at least 1",
            ));
        }
        if self.mode == SystemdMode::Parallel && (self.batch_size.is_some() || self.pause.is_some())
        {
            out.push(Finding::warning(
                Some("mode"),
                "batch_size and pause apply to mode = \"rolling\" only",
            ));
        }
        for (k, v) in [
            ("timeout", self.timeout),
            ("poll_interval", self.poll_interval),
        ] {
            if v.is_some_and(|d| d.is_zero()) {
                out.push(Finding::error(Some(k), format!("{k} must be positive")));
            }
        }
        self.ssh.check(&mut out);
        out
    }

    fn identity(&self) -> String {
        format!(
            "systemd:{}:{}",
            self.places().join(","),
            self.units.join(",")
        )
    }

    /// One per host and unit pattern.
    fn targets(&self) -> Vec<String> {
        self.places()
            .iter()
            .flat_map(|h| self.units.iter().map(move |u| format!("systemd:{h}:{u}")))
            .collect()
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(600))
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Restarter>> {
        Ok(Arc::new(SystemdRestarter::new(self.config())?))
    }
}
