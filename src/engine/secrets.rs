//! Getting the old and new passphrase from where the plan says, without ever
//! putting one in argv, the environment of a child, or a message.

use crate::plan::{NewSource, OldSource};
use std::io::Read;

use vsync_orchestrate_api::{Passphrase, Target};

/// Which passphrase a source was read for: messages name the plan key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Old,
    New,
}

impl Which {
    /// The sources that need nobody at a terminal, for messages that refuse a
    /// prompt.
    fn unattended(self) -> &'static str {
        match self {
            Which::Old => "stdin, file, env or command",
            Which::New => "generate, stdin, file, env or command",
        }
    }
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Which::Old => "passphrase.old",
            Which::New => "passphrase.new",
        })
    }
}

/// Why a passphrase could not be had from its source. No variant holds the
/// passphrase or any part of it: what was read is dropped (zeroized) before the
/// error is made, and a value that is not UTF-8 is not quoted.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {which} from stdin: {source}")]
    StdinRead {
        which: Which,
        source: std::io::Error,
    },
    #[error("{which}: stdin ended before a line for it (old first, then new)")]
    StdinEnded { which: Which },
    /// The file is missing, or cannot be read.
    #[error("{which}: {}: {source}", .path.display())]
    File {
        which: Which,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{which}: {} is readable or writable by others (mode {mode:04o}); chmod 600 it", .path.display())]
    FileMode {
        which: Which,
        path: std::path::PathBuf,
        mode: u32,
    },
    #[error("{which}: environment variable {var} is not set")]
    EnvUnset { which: Which, var: String },
    #[error("{which}: environment variable {var} is not UTF-8")]
    EnvNotUtf8 { which: Which, var: String },
    #[error("{which}: cannot run {program:?}: {source}")]
    CommandSpawn {
        which: Which,
        program: String,
        source: std::io::Error,
    },
    #[error("{which}: {program:?} exited with {status}")]
    CommandFailed {
        which: Which,
        program: String,
        status: std::process::ExitStatus,
    },
    #[error("{which}: command output is not UTF-8")]
    CommandNotUtf8 { which: Which },
    /// No `/dev/tty` to open: a process without a controlling terminal.
    #[error("{label}: no terminal to prompt on ({source}); use stdin, file, env or command")]
    NoTerminal {
        label: &'static str,
        source: std::io::Error,
    },
    /// `/dev/tty` opened, but echo cannot be turned off on it.
    #[error("{label}: cannot configure the terminal")]
    NotATerminal { label: &'static str },
    #[error("{label}: {source}")]
    Prompt {
        label: &'static str,
        source: std::io::Error,
    },
    #[error("{which} = \"prompt\" needs a terminal, and --yes forbids prompts; use {}", .which.unattended())]
    PromptForbidden { which: Which },
    /// `old = "store"`: a store failed to read its current value. The adapter's
    /// error is shared by every consumer of the preflight read, so its kind and
    /// whole chain are kept rather than the error itself.
    #[error("reading the current passphrase from {target}: {chain}")]
    StoreRead {
        target: Target,
        kind: vsync_orchestrate_api::ErrorKind,
        chain: String,
    },
    #[error("passphrase.old = \"store\" but no store can read its value back; use prompt, stdin, file, env or command")]
    NoStoreReadsBack,
    #[error("the two entries differed three times")]
    Mismatch,
    #[error(
        "the new passphrase has {chars} characters; the minimum is {MIN_NEW_LEN} (use 20 or more)"
    )]
    TooShort { chars: usize },
}

/// The shortest new passphrase accepted from a source.
const MIN_NEW_LEN: usize = 12;

/// Lines read from stdin once, shared by `old = "stdin"` and `new = "stdin"`
/// (first line old, next line new).
#[derive(Default)]
pub struct Stdin {
    lines: Option<std::collections::VecDeque<zeroize::Zeroizing<String>>>,
}

impl Stdin {
    fn next(&mut self, which: Which) -> Result<Passphrase, SourceError> {
        if self.lines.is_none() {
            let mut all = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_to_string(&mut all)
                .map_err(|source| SourceError::StdinRead { which, source })?;
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
            .ok_or(SourceError::StdinEnded { which })?;
        Ok(Passphrase::new(line.trim_end_matches('\r').to_owned()))
    }
}

fn from_file(which: Which, path: &std::path::Path) -> Result<Passphrase, SourceError> {
    use std::os::unix::fs::PermissionsExt;
    let file_error = |source| SourceError::File {
        which,
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(file_error)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(SourceError::FileMode {
            which,
            path: path.to_owned(),
            mode: meta.permissions().mode() & 0o777,
        });
    }
    std::fs::read_to_string(path)
        .map(Passphrase::from_file_contents)
        .map_err(file_error)
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

fn from_env(which: Which, var: &str) -> Result<Passphrase, SourceError> {
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
        .map_err(|e| match e {
            std::env::VarError::NotPresent => SourceError::EnvUnset {
                which,
                var: var.to_owned(),
            },
            // The value is wiped here, never quoted.
            std::env::VarError::NotUnicode(value) => {
                zeroize::Zeroize::zeroize(&mut std::os::unix::ffi::OsStringExt::into_vec(value));
                SourceError::EnvNotUtf8 {
                    which,
                    var: var.to_owned(),
                }
            }
        })
}

/// Runs a helper (a password manager's CLI) and takes its stdout.
fn from_command(which: Which, argv: &[String]) -> Result<Passphrase, SourceError> {
    let mut cmd = std::process::Command::new(&argv[0]);
    vsync_orchestrate_api::child_env::scrub(&mut cmd);
    let out = cmd
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| SourceError::CommandSpawn {
            which,
            program: argv[0].clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(SourceError::CommandFailed {
            which,
            program: argv[0].clone(),
            status: out.status,
        });
    }
    let text = String::from_utf8(out.stdout).map_err(|e| {
        // Whatever the helper printed may be most of a passphrase: wipe it.
        zeroize::Zeroize::zeroize(&mut e.into_bytes());
        SourceError::CommandNotUtf8 { which }
    })?;
    Ok(Passphrase::from_file_contents(text))
}

/// Reads a line from the terminal (`/dev/tty`, whatever stdin is) with echo off,
/// through `rpassword`, which restores the terminal however the read ends.
fn prompt(label: &'static str) -> Result<Passphrase, SourceError> {
    use std::io::IsTerminal;
    // rpassword opens /dev/tty itself; opening it here first keeps this message
    // for a process without a terminal, and refuses a /dev/tty that is not one.
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|source| SourceError::NoTerminal { label, source })?;
    if !tty.is_terminal() {
        return Err(SourceError::NotATerminal { label });
    }
    drop(tty);
    // The String goes straight into the zeroizing Passphrase (rpassword's own
    // buffer is zeroized too).
    rpassword::prompt_password(format!("{label}: "))
        .map(Passphrase::new)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ENOTTY) => SourceError::NotATerminal { label },
            _ => SourceError::Prompt { label, source },
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
                        return Err(SourceError::StoreRead {
                            target: target.clone(),
                            kind: e.kind(),
                            chain: e.chain(),
                        })
                    }
                }
            }
            Err(SourceError::NoStoreReadsBack)
        }
        OldSource::Keyword(k) if k == "prompt" => {
            if inputs.yes {
                return Err(SourceError::PromptForbidden { which: Which::Old });
            }
            prompt("Current vault passphrase")
        }
        OldSource::Keyword(_) => inputs.stdin.next(Which::Old),
        OldSource::File { file } => from_file(Which::Old, file),
        OldSource::Env { env } => from_env(Which::Old, env),
        OldSource::Command { command } => from_command(Which::Old, command),
    }
}

pub fn new(src: &NewSource, inputs: &mut Inputs<'_>) -> Result<Passphrase, SourceError> {
    let p = match src {
        NewSource::Generate { generate } => return Ok(self::generate(generate.length)),
        NewSource::Keyword(k) if k == "prompt" => {
            if inputs.yes {
                return Err(SourceError::PromptForbidden { which: Which::New });
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
                    return Err(SourceError::Mismatch);
                }
                eprintln!("The entries differ; try again.");
            }
        }
        NewSource::Keyword(_) => inputs.stdin.next(Which::New)?,
        NewSource::File { file } => from_file(Which::New, file)?,
        NewSource::Env { env } => from_env(Which::New, env)?,
        NewSource::Command { command } => from_command(Which::New, command)?,
    };
    if p.len() < MIN_NEW_LEN {
        return Err(SourceError::TooShort { chars: p.len() });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &std::path::Path, name: &str, body: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn new_from(src: NewSource, yes: bool) -> Result<Passphrase, SourceError> {
        let mut stdin = Stdin::default();
        new(
            &src,
            &mut Inputs {
                yes,
                stdin: &mut stdin,
            },
        )
    }

    #[test]
    fn each_source_failure_is_its_own_variant_and_never_quotes_the_value() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("missing");
        match new_from(
            NewSource::File {
                file: missing.clone(),
            },
            true,
        ) {
            Err(SourceError::File {
                which: Which::New,
                path,
                source,
            }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }

        let open = file(d.path(), "open", "a-secret-of-twenty-chars", 0o644);
        let e = new_from(NewSource::File { file: open }, true).unwrap_err();
        assert!(
            matches!(e, SourceError::FileMode { mode: 0o644, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("(mode 0644); chmod 600 it"), "{e}");
        assert!(!e.to_string().contains("a-secret"), "{e}");

        let short = file(d.path(), "short", "shortsecret\n", 0o600);
        let e = new_from(NewSource::File { file: short }, true).unwrap_err();
        assert!(matches!(e, SourceError::TooShort { chars: 11 }), "{e:?}");
        assert!(!e.to_string().contains("shortsecret"), "{e}");

        let var = "VSYNC_ORCHESTRATE_TEST_SECRETS_NEVER_SET";
        let e = new_from(NewSource::Env { env: var.into() }, true).unwrap_err();
        assert!(
            matches!(&e, SourceError::EnvUnset { which: Which::New, var: v } if v == var),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("passphrase.new: environment variable {var} is not set")
        );

        let e = new_from(
            NewSource::Command {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo leaked-secret; exit 3".into(),
                ],
            },
            true,
        )
        .unwrap_err();
        match &e {
            SourceError::CommandFailed {
                program, status, ..
            } => {
                assert_eq!(program, "sh");
                assert_eq!(status.code(), Some(3));
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.to_string().contains("leaked-secret"), "{e}");

        let e = new_from(
            NewSource::Command {
                command: vec!["printf".into(), "secret\\377secret-more".into()],
            },
            true,
        )
        .unwrap_err();
        assert!(
            matches!(e, SourceError::CommandNotUtf8 { which: Which::New }),
            "{e:?}"
        );

        let e = new_from(NewSource::Keyword("prompt".into()), true).unwrap_err();
        assert!(
            matches!(e, SourceError::PromptForbidden { which: Which::New }),
            "{e:?}"
        );
        assert!(e
            .to_string()
            .ends_with("use generate, stdin, file, env or command"));
    }

    #[test]
    fn a_store_that_cannot_read_keeps_its_kind() {
        let mut stdin = Stdin::default();
        let mut inputs = Inputs {
            yes: true,
            stdin: &mut stdin,
        };
        let target = Target::new("file", "/etc/app/passphrase");
        let currents = [(
            target.clone(),
            Err(vsync_orchestrate_api::Error::permission("open: EACCES")),
        )];
        let e = old(&OldSource::Keyword("store".into()), &currents, &mut inputs).unwrap_err();
        match &e {
            SourceError::StoreRead {
                target: t, kind, ..
            } => {
                assert_eq!(t, &target);
                assert_eq!(*kind, vsync_orchestrate_api::ErrorKind::Permission);
            }
            other => panic!("{other:?}"),
        }
        let none: [(Target, vsync_orchestrate_api::Result<Option<Passphrase>>); 1] =
            [(target, Ok(None))];
        assert!(matches!(
            old(&OldSource::Keyword("store".into()), &none, &mut inputs),
            Err(SourceError::NoStoreReadsBack)
        ));
        assert!(matches!(
            old(&OldSource::Keyword("prompt".into()), &none, &mut inputs),
            Err(SourceError::PromptForbidden { which: Which::Old })
        ));
    }
}
