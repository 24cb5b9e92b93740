//! Getting the old and new passphrase from where the plan says, without ever
//! putting one in argv, the environment of a child, or a message.

use crate::plan::{NewSource, OldSource};
use std::io::Read;

use vsync_orchestrate_api::{Passphrase, Target};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Lines read from stdin once, shared by `old = "stdin"` and `new = "stdin"`
/// (first line old, next line new).
#[derive(Default)]
pub struct Stdin {
    lines: Option<std::collections::VecDeque<zeroize::Zeroizing<String>>>,
}

impl Stdin {
    fn next(&mut self, what: &str) -> Result<Passphrase, SourceError> {
        if self.lines.is_none() {
            let mut all = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_to_string(&mut all)
                .map_err(|e| SourceError(format!("reading {what} from stdin: {e}")))?;
            self.lines = Some(
                all.lines()
                    .map(|l| zeroize::Zeroizing::new(l.to_owned()))
                    .collect(),
            );
        }
        let line = self
            .lines
            .as_mut()
            .and_then(|l| l.pop_front())
            .ok_or_else(|| {
                SourceError(format!(
                    "{what}: stdin ended before a line for it (old first, then new)"
                ))
            })?;
        Ok(Passphrase::new(line.trim_end_matches('\r').to_owned()))
    }
}

fn from_file(what: &str, path: &std::path::Path) -> Result<Passphrase, SourceError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| SourceError(format!("{what}: {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(SourceError(format!(
            "{what}: {} is readable or writable by others (mode {:04o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    std::fs::read_to_string(path)
        .map(Passphrase::from_file_contents)
        .map_err(|e| SourceError(format!("{what}: {}: {e}", path.display())))
}

type Captured = std::collections::HashMap<String, zeroize::Zeroizing<String>>;

fn captured() -> &'static std::sync::Mutex<Captured> {
    static C: std::sync::OnceLock<std::sync::Mutex<Captured>> = std::sync::OnceLock::new();
    C.get_or_init(Default::default)
}

/// The variables `{ env = … }` passphrase sources name in this plan.
pub fn env_names(plan: &crate::plan::Plan) -> Vec<String> {
    let mut names = Vec::new();
    if let OldSource::Env { env } = &plan.passphrase.old {
        names.push(env.clone());
    }
    if let NewSource::Env { env } = &plan.passphrase.new {
        names.push(env.clone());
    }
    names
}

/// Moves the values of the plan's `{ env = … }` passphrase sources out of the
/// process environment, so no child process (restart commands, `[notify]`, `ssh`,
/// credential helpers) can inherit them.
///
/// Call it before any other thread exists: the binary does, in `main`, before the
/// runtime starts (changing the environment while another thread reads it is
/// undefined behaviour in libc).
pub fn capture_env(plan: &crate::plan::Plan) {
    for name in env_names(plan) {
        vsync_orchestrate_api::child_env::register(&name);
        if let Ok(v) = std::env::var(&name) {
            captured()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone(), zeroize::Zeroizing::new(v));
            std::env::remove_var(&name);
        }
    }
}

fn from_env(what: &str, var: &str) -> Result<Passphrase, SourceError> {
    vsync_orchestrate_api::child_env::register(var);
    if let Some(v) = captured()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(var)
    {
        return Ok(Passphrase::new(v.to_string()));
    }
    std::env::var(var)
        .map(Passphrase::new)
        .map_err(|_| SourceError(format!("{what}: environment variable {var} is not set")))
}

/// Runs a helper (a password manager's CLI) and takes its stdout.
fn from_command(what: &str, argv: &[String]) -> Result<Passphrase, SourceError> {
    let mut cmd = std::process::Command::new(&argv[0]);
    vsync_orchestrate_api::child_env::scrub(&mut cmd);
    let out = cmd
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| SourceError(format!("{what}: cannot run {:?}: {e}", argv[0])))?;
    if !out.status.success() {
        return Err(SourceError(format!(
            "{what}: {:?} exited with {}",
            argv[0], out.status
        )));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| SourceError(format!("{what}: command output is not UTF-8")))?;
    Ok(Passphrase::from_file_contents(text))
}

/// Reads a line from the terminal (`/dev/tty`, whatever stdin is) with echo off,
/// through `rpassword`, which restores the terminal however the read ends.
fn prompt(label: &str) -> Result<Passphrase, SourceError> {
    use std::io::IsTerminal;
    // rpassword opens /dev/tty itself; opening it here first keeps this message
    // for a process without a terminal, and refuses a /dev/tty that is not one.
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            SourceError(format!(
                "{label}: no terminal to prompt on ({e}); use stdin, file, env or command"
            ))
        })?;
    if !tty.is_terminal() {
        return Err(SourceError(format!(
            "{label}: cannot configure the terminal"
        )));
    }
    drop(tty);
    // The String goes straight into the zeroizing Passphrase (rpassword's own
    // buffer is zeroized too).
    rpassword::prompt_password(format!("{label}: "))
        .map(Passphrase::new)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTTY) => SourceError(format!("{label}: cannot configure the terminal")),
            _ => SourceError(format!("{label}: {e}")),
        })
}

/// 62-symbol alphabet from the OS-seeded CSPRNG: ~5.95 bits per character.
pub fn generate(length: usize) -> Passphrase {
    use rand::distr::{Alphanumeric, SampleString};
    Passphrase::new(Alphanumeric.sample_string(&mut rand::rng(), length))
}

pub struct Inputs<'a> {
    pub yes: bool,
    pub stdin: &'a mut Stdin,
}

/// What each store returned for its current value, read once in preflight.
pub type Currents = [(Target, vsync_orchestrate_api::Result<Option<Passphrase>>)];

/// The old passphrase: from a store (the first that can read it back) or a source.
pub fn old(
    src: &OldSource,
    currents: &Currents,
    inputs: &mut Inputs<'_>,
) -> Result<Passphrase, SourceError> {
    match src {
        OldSource::Keyword(k) if k == "store" => {
            for (target, current) in currents {
                match current {
                    Ok(Some(p)) => return Ok(p.clone()),
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(SourceError(format!(
                            "reading the current passphrase from {target}: {}",
                            e.chain()
                        )))
                    }
                }
            }
            Err(SourceError("passphrase.old = \"store\" but no store can read its value back; use prompt, stdin, file, env or command".into()))
        }
        OldSource::Keyword(k) if k == "prompt" => {
            if inputs.yes {
                return Err(SourceError("passphrase.old = \"prompt\" needs a terminal, and --yes forbids prompts; use stdin, file, env or command".into()));
            }
            prompt("Current vault passphrase")
        }
        OldSource::Keyword(_) => inputs.stdin.next("passphrase.old"),
        OldSource::File { file } => from_file("passphrase.old", file),
        OldSource::Env { env } => from_env("passphrase.old", env),
        OldSource::Command { command } => from_command("passphrase.old", command),
    }
}

pub fn new(src: &NewSource, inputs: &mut Inputs<'_>) -> Result<Passphrase, SourceError> {
    let p = match src {
        NewSource::Generate { generate } => return Ok(self::generate(generate.length)),
        NewSource::Keyword(k) if k == "prompt" => {
            if inputs.yes {
                return Err(SourceError("passphrase.new = \"prompt\" needs a terminal, and --yes forbids prompts; use generate, stdin, file, env or command".into()));
            }
            let mut tries = 0;
            loop {
                let a = prompt("New vault passphrase")?;
                let b = prompt("Repeat the new passphrase")?;
                if a.same_as(&b) {
                    break a;
                }
                tries += 1;
                if tries == 3 {
                    return Err(SourceError("the two entries differed three times".into()));
                }
                eprintln!("The entries differ; try again.");
            }
        }
        NewSource::Keyword(_) => inputs.stdin.next("passphrase.new")?,
        NewSource::File { file } => from_file("passphrase.new", file)?,
        NewSource::Env { env } => from_env("passphrase.new", env)?,
        NewSource::Command { command } => from_command("passphrase.new", command)?,
    };
    if p.len() < 12 {
        return Err(SourceError(format!(
            "the new passphrase has {} characters; the minimum is 12 (use 20 or more)",
            p.len()
        )));
    }
    Ok(p)
}
