//! The command line (clap). `main.rs` only parses, dispatches and exits.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub mod completions;
pub mod manual;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

pub use crate::report::log::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "vsync-orchestrate",
    version = env!("VSYNC_ORCHESTRATE_VERSION"),
    about = "Rotate the passphrase of a vsync vault end to end: stage, rotate, activate, restart, verify.",
    after_help = crate::engine::Exit::help_table()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// `json` prints one summary object on stdout (progress stays on stderr).
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: Output,

    /// Never prompt; fail clearly where a prompt would be needed (cron, CI).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// Where run journals live (default: the plan's state_dir, else
    /// $XDG_STATE_HOME/vsync-orchestrate).
    #[arg(long, global = true, env = "VSYNC_ORCHESTRATE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Log on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides). Without
    /// it only warnings are logged; the progress display is separate.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// `json` writes one structured log object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// After `run`, write Prometheus metrics here (node-exporter's textfile
    /// collector): last success, generation, window, last exit code, per env.
    #[arg(long, global = true)]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rotate: preflight, stage, rotate, activate, restart, verify. Several plans
    /// (one per environment) run side by side, each under its own vault lock.
    Run {
        /// Plan files (TOML), one per environment.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        /// How many plans run at once.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallel: u16,
        /// Rotate even when [schedule] min_age says it is not due.
        #[arg(long)]
        force: bool,
        /// First remove staged versions an abandoned earlier run left behind
        /// (e.g. a stale AWSPENDING), instead of refusing. Prefer `resume`.
        #[arg(long)]
        clean_stale: bool,
    },
    /// Dry run: the full read-only preflight and the ordered list of every write `run` would make.
    Plan {
        /// The plan file (TOML).
        plan: PathBuf,
    },
    /// Static checks only (no network): for CI on plan repositories.
    Validate {
        /// Plan files (TOML).
        #[arg(required = true)]
        plans: Vec<PathBuf>,
    },
    /// Finish the newest interrupted run on this plan's vault from its journal.
    Resume {
        /// The plan file (TOML) of the interrupted run.
        plan: PathBuf,
    },
    /// Pointer, stamp, generation, last rotation, lock and each store's state.
    Status {
        /// The plan file (TOML).
        plan: PathBuf,
    },
    /// The newest rows of the vault's audit log.
    Audit {
        /// The plan file (TOML).
        plan: PathBuf,
        /// How many rows, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Rotate a local demo vault under N running apps, with no cloud account.
    Demo {
        /// Keep the sandbox here for inspection (default: a temporary directory, removed).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// How many demo apps to start.
        #[arg(long, default_value_t = 3)]
        apps: u32,
    },
    /// Create a demo sandbox with running apps and print its plan path, without
    /// rotating (for trying `plan`, `run`, `status`, `resume` by hand, and for tests).
    #[command(hide = true)]
    DemoSetup {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        apps: u32,
        /// PBKDF2 iterations of the demo vault (tests use fewer than vsync's 600000).
        #[arg(long, default_value_t = crate::vault::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// The demo app itself (what `demo` starts): boots from VSYNC_CONFIG[_FILE] and
    /// VSYNC_PASSPHRASE[_FILE] and serves /healthz.
    #[command(hide = true)]
    DemoApp {
        #[arg(long)]
        port: u16,
    },
    /// The shell completion script, to stdout.
    Completions {
        /// The shell the script is for.
        shell: clap_complete::Shell,
    },
    /// The man page (roff) to stdout, or with --dir every page (one per command).
    Man {
        /// Write vsync-orchestrate.1 and one vsync-orchestrate-COMMAND.1 per
        /// command here (e.g. /usr/local/share/man/man1) and list them.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The plan's JSON Schema (for editors: taplo / Even Better TOML), to stdout.
    Schema,
    /// Restart one demo app (the demo plan's `command` restarter runs this).
    #[command(hide = true)]
    DemoCtl {
        #[arg(value_parser = ["restart", "stop"])]
        action: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        app: u32,
    },
}
