//! Man pages: `vsync-orchestrate(1)` and one `vsync-orchestrate-<command>(1)` per
//! visible subcommand, so every name the SUBCOMMANDS section points to is a page
//! that installs beside it (clap_mangen's own render names pages that nothing
//! writes, and puts the exit codes under EXTRA).
//!
//! The exit statuses come from [`Exit::ALL`] and [`Exit::meaning`], the table
//! `--help` prints, so a code added there appears here too.

use crate::engine::Exit;
use clap::{Command, CommandFactory};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const BIN: &str = "vsync-orchestrate";
const SECTION: &str = "1";

/// One man page: its file name (`vsync-orchestrate-run.1`) and its roff source.
pub struct Page {
    pub file_name: String,
    pub roff: Vec<u8>,
}

/// Every page: the main one first, then one per visible subcommand.
pub fn pages() -> io::Result<Vec<Page>> {
    let root = built_root();
    let subs: Vec<Command> = visible_subcommands(&root).cloned().collect();
    let mut out = vec![page(&root, &root, true)?];
    for sub in &subs {
        out.push(page(&root, sub, false)?);
    }
    Ok(out)
}

/// Writes every page into `dir` (created if missing), for `man --dir`:
/// `/usr/local/share/man/man1` is where `man` finds them without configuration.
pub fn write_to(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for p in pages()? {
        let path = dir.join(&p.file_name);
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&p.roff)?;
        f.flush()?;
        written.push(path);
    }
    Ok(written)
}

/// The main page alone, for `man` without `--dir` (to stdout).
pub fn write_main(w: &mut dyn Write) -> io::Result<()> {
    let root = built_root();
    w.write_all(&page(&root, &root, true)?.roff)?;
    w.flush()
}

/// The command as parsed, built so each subcommand knows its display name
/// (`vsync-orchestrate-run`) and carries the global flags. No `help` subcommand:
/// a page for it would only say `--help`.
fn built_root() -> Command {
    let mut root = super::Cli::command().disable_help_subcommand(true);
    root.build();
    root
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

fn page(root: &Command, cmd: &Command, is_root: bool) -> io::Result<Page> {
    // A subcommand has no version of its own; its page's VERSION is the binary's
    // (set after the build, so it adds no `--version` flag to the subcommand).
    let man = clap_mangen::Man::new(cmd.clone().version(env!("VSYNC_ORCHESTRATE_VERSION")))
        .section(SECTION);
    let mut w = Vec::new();
    w.extend_from_slice(title(&man.get_filename()).as_bytes());
    man.render_name_section(&mut w)?;
    man.render_synopsis_section(&mut w)?;
    man.render_description_section(&mut w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut w)?;
    }
    if is_root {
        man.render_subcommands_section(&mut w)?;
    }
    w.extend_from_slice(exit_status().as_bytes());
    w.extend_from_slice(environment().as_bytes());
    w.extend_from_slice(files().as_bytes());
    w.extend_from_slice(see_also(root, cmd, is_root).as_bytes());
    man.render_version_section(&mut w)?;
    Ok(Page {
        file_name: man.get_filename(),
        roff: w,
    })
}

/// The `.TH` line, written here because clap_mangen leaves an empty date
/// unquoted, which shifts the source and manual names one field left. No date:
/// the version (with its commit) says which build the page describes. `.nh`:
/// names, paths and variables are copied from the page, so none is hyphenated.
fn title(file_name: &str) -> String {
    let name = file_name.trim_end_matches(&format!(".{SECTION}"));
    format!(
        ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.TH {} {SECTION} \"\" \"{}\" \"vsync-orchestrate manual\"\n.nh\n",
        escape(name),
        escape(env!("VSYNC_ORCHESTRATE_VERSION")),
    )
}

fn exit_status() -> String {
    let mut s = String::from(".SH \"EXIT STATUS\"\n");
    s.push_str(&para(
        "When several plans run, or several things fail in one run, the most urgent \
         outcome is the status. 0 is also a run that was not due yet and a clean dry run.",
    ));
    for e in Exit::ALL {
        s.push_str(&format!(".TP\n.B {}\n{}", e.code(), line(e.meaning())));
    }
    s
}

fn environment() -> String {
    let mut s = String::from(".SH ENVIRONMENT\n");
    for (name, what) in ENVIRONMENT {
        s.push_str(&format!(".TP\n.B {}\n{}", escape(name), line(what)));
    }
    s
}

/// The variables the tool reads itself or hands to the SDKs it runs on.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "VSYNC_ORCHESTRATE_STATE_DIR",
        "The state directory, as `--state-dir`; the flag wins over it, and it over the plan's `state_dir`.",
    ),
    (
        "XDG_STATE_HOME",
        "Without any of those, the state directory is `$XDG_STATE_HOME/vsync-orchestrate`, or `$HOME/.local/state/vsync-orchestrate` when it is unset.",
    ),
    (
        "RUST_LOG",
        "Replaces the whole log filter `-v` sets, e.g. `RUST_LOG=vsync_orchestrate=debug`.",
    ),
    (
        "the names a plan gives",
        "A plan's `{ env = \"NAME\" }` sources (passphrases, `salt`, `config`, webhook URLs) are read at start and removed from the environment, so no restart command, notifier, `ssh` or credential helper inherits them.",
    ),
    (
        "AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN",
        "The AWS SDK's standard credential and region chain (S3 vaults, Secrets Manager, SSM, ECS, EKS), unless the plan names a `profile`.",
    ),
    (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "Application Default Credentials for Google Cloud targets.",
    ),
    (
        "KUBECONFIG",
        "The kubeconfig for Kubernetes targets that name none; then `~/.kube/config`.",
    ),
    (
        "FLY_API_TOKEN",
        "The Fly.io API token, unless the plan's `token_env` names another variable.",
    ),
    (
        "VERCEL_TOKEN",
        "The Vercel API token, unless the plan's `token_env` names another variable.",
    ),
    (
        "USER",
        "Recorded as the operator in the vault's audit row and in the lock.",
    ),
    (
        "PATH",
        "Where `command` restarters, notifiers, passphrase helpers and `ssh` are found. A `command` restarter also gets VSYNC_ORCHESTRATE_RUN_ID and VSYNC_ORCHESTRATE_TARGET.",
    ),
];

fn files() -> String {
    let mut s = String::from(".SH FILES\n");
    for (name, what) in FILES {
        s.push_str(&format!(".TP\n.I {}\n{}", escape(name), line(what)));
    }
    s
}

const FILES: &[(&str, &str)] = &[
    (
        "~/.local/state/vsync-orchestrate/",
        "The default state directory (see ENVIRONMENT for how it is chosen), created mode 0700. The shipped systemd unit uses `/var/lib/vsync-orchestrate/`.",
    ),
    (
        "STATE/runs/RUN.json",
        "One journal per run, mode 0600, written before each step: what `resume` and `status` read. It never holds a passphrase.",
    ),
    (
        "STATE/escrow/RUN.genN.age",
        "With `[escrow]`: the new passphrase sealed with age to the plan's `age_recipients`, a break-glass copy.",
    ),
    (
        "PREFIX.vsync-orchestrate.lock",
        "In the vault (bucket or directory), beside its pointer: the lock that allows one run per vault. `status` shows its holder.",
    ),
    (
        "/etc/vsync-orchestrate/plans/*.toml",
        "The plans the shipped systemd unit runs; `/etc/vsync-orchestrate/env` holds its credentials (never a passphrase).",
    ),
];

fn see_also(root: &Command, cmd: &Command, is_root: bool) -> String {
    let mut refs: Vec<String> = Vec::new();
    if !is_root {
        refs.push(format!("{BIN}({SECTION})"));
    }
    for sub in visible_subcommands(root) {
        if is_root || sub.get_name() != cmd.get_name() {
            refs.push(format!("{BIN}-{}({SECTION})", sub.get_name()));
        }
    }
    refs.push("systemd.service(5)".into());
    refs.push("age(1)".into());
    format!(".SH \"SEE ALSO\"\n{}\n", escape(&refs.join(", ")))
}

/// One paragraph of text as a roff line (with a `.PP` before it).
fn para(text: &str) -> String {
    format!(".PP\n{}", line(text))
}

/// A text line: backquoted spans in bold (commands and keys an operator types),
/// the rest escaped so roff reads it as text.
fn line(text: &str) -> String {
    let mut out = String::from("\\&");
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("\\fB");
            out.push_str(&escape(part));
            out.push_str("\\fR");
        } else {
            out.push_str(&escape(part));
        }
    }
    out.push('\n');
    out
}

/// Backslashes and hyphens in roff's spelling: `\-` so an option or a command
/// copied from the page is the ASCII one.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_never_starts_a_request_and_code_is_bold() {
        assert_eq!(
            line(".hidden `run --force` x-y"),
            "\\&.hidden \\fBrun \\-\\-force\\fR x\\-y\n"
        );
        assert_eq!(line("'quote"), "\\&'quote\n");
    }
}
