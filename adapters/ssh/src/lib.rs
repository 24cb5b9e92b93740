//! vsync-orchestrate adapters for VPS hosts.
//!
//! * [`VpsFileStore`] (`type = "vps_file"`): the passphrase as a file (mode 0600 by
//!   default) on one or more hosts; staged as `<path>.new`, activated by renaming it
//!   over `<path>` on all hosts concurrently, the old value kept as `<path>.prev`.
//! * [`SystemdRestarter`] (`type = "systemd"`): `systemctl restart` of units (globs
//!   allowed), parallel or rolling, confirmed by new InvocationIDs, unchanged
//!   NRestarts and a settle period; failures quote the unit's journal.
//!
//! Both work over SSH ([`Transport::Ssh`]) or on this machine ([`Transport::Local`]).
//! Locally, `systemd` runs the same `systemctl` commands here, and `vps_file` uses
//! the staged-file core of the `file` store in this process (one implementation of
//! stage, rename and `.prev` on this host; `sudo` is refused there unless the process
//! is root). SSH uses the system `ssh` client (through the `openssh`
//! crate), so `~/.ssh/config`, ProxyJump, ssh-agent and known_hosts behave as with a
//! plain `ssh`; host keys are checked strictly by default; `preflight` opens one
//! multiplexed master connection per host and every later step reuses it.
//!
//! Secrets travel on stdin only, never in argv or the environment. Commands are
//! fixed scripts; with `sudo = true` they run as `sudo -n` (never prompting), which
//! needs these sudoers rules for the login user (`deploy` here):
//!
//! ```text
//! # vps_file store: the fixed scripts run as /bin/sh -c (this is root-equivalent)
//! deploy ALL=(root) NOPASSWD: /bin/sh, /usr/bin/sh
//! # systemd restarter: only restart and journal reads of the app's units
//! deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart myapp@*, /usr/bin/journalctl -u myapp@*
//! ```

mod config;
mod fanout;
mod plan;
mod sftp;
mod shell;
mod systemd;
mod vps_file;

pub use config::{
    HostKeyPolicy, HostSpec, RestartMode, SshOptions, SystemdConfig, Transport, VpsFileConfig,
};
pub use plan::{
    HostEntry, HostKeyPolicyName, HostTable, SshTable, SystemdMode, SystemdTable, VpsFileTable,
};
pub use systemd::{SystemdRestarter, KIND as SYSTEMD_KIND};
pub use vps_file::{VpsFileStore, KIND as VPS_FILE_KIND};
