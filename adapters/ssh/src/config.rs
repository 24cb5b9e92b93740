//! Plain configuration structs for the adapters in this crate.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One remote host reached with the system `ssh` client.
///
/// Everything not set here comes from the operator's `~/.ssh/config` (Host aliases,
/// ProxyJump, IdentityFile, certificates) and ssh-agent, exactly as with a plain `ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Host name, address or `~/.ssh/config` alias.
    pub host: String,
    /// TCP port; `None` lets ssh decide (22, or the config's `Port`).
    pub port: Option<u16>,
    /// Login user; `None` lets ssh decide.
    pub user: Option<String>,
    /// Use only this private key (`-i FILE -o IdentitiesOnly=yes`).
    pub identity_file: Option<PathBuf>,
    /// A known_hosts file to use instead of `~/.ssh/known_hosts`
    /// (`-o UserKnownHostsFile=FILE`); host keys are still checked strictly.
    pub known_hosts_file: Option<PathBuf>,
}

impl HostSpec {
    /// A host with everything else left to ssh and its config.
    pub fn new(host: impl Into<String>) -> Self {
        HostSpec {
            host: host.into(),
            port: None,
            user: None,
            identity_file: None,
            known_hosts_file: None,
        }
    }

    /// `host` or `host:port`: how the host is named in progress lines and errors.
    pub fn label(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Where the commands of an adapter run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// On each of these hosts over SSH, one multiplexed master connection per host.
    Ssh(Vec<HostSpec>),
    /// On this machine: `systemd` runs its `systemctl` commands here; `vps_file`
    /// writes the file from this process with the `file` store's staged-file core.
    Local,
}

/// How host keys are checked. Strict is the default and the recommendation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// `StrictHostKeyChecking=yes`: the host key must already be in known_hosts.
    #[default]
    Strict,
    /// `StrictHostKeyChecking=accept-new`: trust on first use, refuse changed keys.
    AcceptNew,
}

/// Options for the SSH transport shared by all hosts of one adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// Host-key policy; [`HostKeyPolicy::Strict`] by default.
    pub host_key_policy: HostKeyPolicy,
    /// `ConnectTimeout` for opening the master connection (default 10 s).
    pub connect_timeout: Duration,
    /// Upper bound for one remote command (default 120 s).
    pub command_timeout: Duration,
    /// Where the control sockets go (short paths only: sockets are limited to ~100
    /// bytes). Default: openssh's default, `$XDG_STATE_HOME` or `~/.local/state`.
    pub control_directory: Option<PathBuf>,
    /// An ssh config file to use instead of `~/.ssh/config` (`-F FILE`).
    pub config_file: Option<PathBuf>,
    /// `ControlPersist`: how long a master connection stays up once no channel is
    /// open on it (default 10 s). It is short on purpose: it is how long the `ssh`
    /// master, and its session on the host, outlive a run that was killed (SIGKILL, a
    /// second SIGTERM). It never cuts a living run short: while the tool holds a
    /// connection it keeps one idle channel open on it (a remote `cat` that is sent
    /// nothing), so the master stays up however long a rollout waits between
    /// commands, and that channel closes by itself when the process dies.
    pub idle_timeout: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(120),
            control_directory: None,
            config_file: None,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// The `vps_file` secret store: the passphrase as a file on one or more hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpsFileConfig {
    /// Where the file lives (every host uses the same path).
    pub transport: Transport,
    /// Absolute path of the passphrase file, e.g. `/etc/vsync/passphrase`. The staged
    /// value goes to `<path>.new`, the previous one is kept as `<path>.prev`; the
    /// directory must exist.
    pub path: String,
    /// Owner to `chown` the file to (name or uid); `None` keeps the writer's.
    pub owner: Option<String>,
    /// Group to `chown` the file to (name or gid); `None` keeps the writer's.
    pub group: Option<String>,
    /// File mode; `None` means 0600.
    pub mode: Option<u32>,
    /// Run every command as `sudo -n /bin/sh -c <script>` (never prompts). On the
    /// local transport, where nothing runs through a shell, only a process that is
    /// already root can honour it; otherwise building the store fails (`InvalidConfig`).
    pub sudo: bool,
    /// SSH transport options (ignored for [`Transport::Local`]).
    pub ssh: SshOptions,
}

impl VpsFileConfig {
    /// A store for `path` with mode 0600, no chown, no sudo, default SSH options.
    pub fn new(transport: Transport, path: impl Into<String>) -> Self {
        VpsFileConfig {
            transport,
            path: path.into(),
            owner: None,
            group: None,
            mode: None,
            sudo: false,
            ssh: SshOptions::default(),
        }
    }
}

/// How the units are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMode {
    /// Every unit on every host at once.
    Parallel,
    /// `batch_size` units at a time (host by host, in plan order); each batch must
    /// settle before `pause` and the next batch. A failed batch stops the rollout.
    Rolling { batch_size: usize, pause: Duration },
}

/// The `systemd` restarter: `systemctl restart` of some units on some hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdConfig {
    /// Where the units run.
    pub transport: Transport,
    /// Unit names or globs (`myapp@*.service`). Globs are expanded with
    /// `systemctl list-units --all` and so match only units systemd has loaded
    /// (running, failed, or otherwise referenced); a glob matching nothing is an error.
    pub units: Vec<String>,
    /// Parallel or rolling.
    pub mode: RestartMode,
    /// How long each restarted unit must stay `active (running)` with the same new
    /// InvocationID and unchanged NRestarts before it counts as done (default 10 s).
    pub settle: Duration,
    /// How often unit state is polled (default 500 ms).
    pub poll_interval: Duration,
    /// Journal lines quoted for a failed unit (default 10).
    pub journal_lines: usize,
    /// Run `systemctl restart` and `journalctl` through `sudo -n`.
    pub sudo: bool,
    /// SSH transport options (ignored for [`Transport::Local`]).
    pub ssh: SshOptions,
}

impl SystemdConfig {
    /// Parallel restart of `units`, 10 s settle, no sudo, default SSH options.
    pub fn new(transport: Transport, units: Vec<String>) -> Self {
        SystemdConfig {
            transport,
            units,
            mode: RestartMode::Parallel,
            settle: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            journal_lines: 10,
            sudo: false,
            ssh: SshOptions::default(),
        }
    }
}
