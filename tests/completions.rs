//! The completion scripts `vsync-orchestrate completions SHELL` prints, loaded into
//! real bash, zsh and fish and asked what they offer after a typed line: every
//! visible subcommand, every flag of each (its own and the global ones), flag
//! values, and none of the hidden plumbing commands (`demo-app`, `demo-ctl`,
//! `demo-setup`).
//!
//! bash is driven the way readline calls a completion function (COMP_WORDS,
//! COMP_CWORD, the function `complete -p` registered); zsh through a
//! pseudo-terminal (zsh/zpty) with a line and a TAB typed into an interactive
//! shell after `compinit`; fish with `complete -C`.

use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::Command;
use vsync_orchestrate_testkit::service::{current_test, tools_or_skip};

const EXE: &str = env!("CARGO_BIN_EXE_vsync-orchestrate");
const BIN: &str = "vsync-orchestrate";
const HIDDEN: [&str; 3] = ["demo-app", "demo-ctl", "demo-setup"];

/// Writes the script the binary prints for `shell` into `dir`.
fn script(shell: &str, dir: &Path) -> PathBuf {
    let out = Command::new(EXE)
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // zsh's completion system finds a function by its file name.
    let path = dir.join(match shell {
        "zsh" => format!("_{BIN}"),
        _ => format!("{BIN}.{shell}"),
    });
    std::fs::write(&path, out.stdout).unwrap();
    path
}

/// What a shell offers after `typed` (words; the last is the one being completed,
/// "" for a fresh word).
trait Shell {
    fn offers(&self, typed: &[&str]) -> Vec<String>;
}

struct Bash(PathBuf);

impl Shell for Bash {
    fn offers(&self, typed: &[&str]) -> Vec<String> {
        // The function the script registered for the command, called with the
        // arguments readline passes: the command, the current word, the previous.
        let drive = r#"source "$1" || exit 9; shift
            f=$(complete -p vsync-orchestrate | sed -E 's/.* -F ([^ ]+) .*/\1/')
            [ -n "$f" ] || { echo "no completion registered" >&2; exit 8; }
            COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
            "$f" vsync-orchestrate "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}""#;
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", drive, "bash"])
            .arg(&self.0)
            .arg(BIN)
            .args(typed)
            .output()
            .unwrap();
        lines(out, "bash", typed)
    }
}

struct Zsh {
    script_dir: PathBuf,
    driver: PathBuf,
}

/// Types a line and a TAB into an interactive zsh on a pseudo-terminal, with the
/// completion system loaded and the script's directory first on `fpath`, and
/// appends every candidate the completion functions add (through `compadd`, as
/// matched against the typed prefix) to a file. zsh cannot complete outside its
/// line editor, so this is how a test asks it.
const ZSH_DRIVER: &str = r#"
zmodload zsh/zpty || exit 3
local dir=$1 out=$2 typed=$3 line ok=''
zpty z zsh -f -i
zpty -w z "PS1=''; unsetopt zle_bracketed_paste 2>/dev/null"
zpty -w z "fpath=(${(q)dir} \$fpath); autoload -Uz compinit && compinit -u -D"
zpty -w z "unsetopt autolist listbeep beep; zstyle ':completion:*' menu no"
zpty -w z 'compadd() { if (( ${@[(I)-[OAD]]} )); then builtin compadd "$@"; return; fi; local -a m; builtin compadd -A m "$@"; (( $#m )) && print -rl -- $m >>'"${(q)out}"'; builtin compadd "$@"; }'
zpty -w z "print -r -- READY\$((6*7))"
for i in {1..400}; do
  if zpty -r -t z line; then [[ $line == *READY42* ]] && { ok=1; break }; else sleep 0.05; fi
done
[[ -n $ok ]] || { print -u2 "zsh never became ready"; exit 4; }
: >| $out
zpty -w -n z "$typed"$'\t'
# Typed after the TAB, so it runs once the completion widget has returned: when
# its output appears, every candidate has been recorded.
zpty -w z $'\C-u'"print -r -- DONE\$((6*7))"
ok=''
for i in {1..800}; do
  if zpty -r -t z line; then [[ $line == *DONE42* ]] && { ok=1; break }; else sleep 0.05; fi
done
[[ -n $ok ]] || { print -u2 "the completion never returned"; exit 5; }
zpty -d z
"#;

impl Shell for Zsh {
    fn offers(&self, typed: &[&str]) -> Vec<String> {
        let out_file = tempfile::NamedTempFile::new().unwrap();
        let line = std::iter::once(BIN)
            .chain(typed.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let run = Command::new("zsh")
            .arg("-f")
            .arg(&self.driver)
            .arg(&self.script_dir)
            .arg(out_file.path())
            .arg(&line)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "zsh driver for {line:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let got = std::fs::read_to_string(out_file.path()).unwrap();
        let mut v: Vec<String> = got.lines().map(str::to_owned).collect();
        v.sort();
        v.dedup();
        v
    }
}

struct Fish(PathBuf);

impl Shell for Fish {
    fn offers(&self, typed: &[&str]) -> Vec<String> {
        let line = std::iter::once(BIN)
            .chain(typed.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let out = Command::new("fish")
            .args([
                "--no-config",
                "-c",
                "source $argv[1]; and complete -C $argv[2]",
            ])
            .arg(&self.0)
            .arg(&line)
            .output()
            .unwrap();
        // `candidate<TAB>description`
        lines(out, "fish", typed)
            .into_iter()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    }
}

fn lines(out: std::process::Output, shell: &str, typed: &[&str]) -> Vec<String> {
    assert!(
        out.status.success(),
        "{shell} for {typed:?}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The CLI as the binary parses it: visible subcommands and, for each, every
/// visible long flag (its own and the global ones).
fn visible_commands() -> Vec<(String, Vec<String>)> {
    let mut root = vsync_orchestrate::cli::Cli::command();
    root.build();
    root.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| {
            let flags = s
                .get_arguments()
                .filter(|a| !a.is_hide_set())
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .chain(["--help".to_owned()])
                .collect();
            (s.get_name().to_owned(), flags)
        })
        .collect()
}

/// The checks every shell must pass.
fn check(shell: &dyn Shell, name: &str) {
    let commands = visible_commands();
    assert!(commands.len() >= 10, "{commands:?}");

    // After the command name: every visible subcommand, no hidden one.
    let top = shell.offers(&[""]);
    for (sub, _) in &commands {
        assert!(top.contains(sub), "{name}: `{BIN} ` lacks {sub}: {top:?}");
    }
    for hidden in HIDDEN {
        assert!(
            !top.iter().any(|c| c == hidden),
            "{name}: `{BIN} ` offers the hidden {hidden}: {top:?}"
        );
    }
    let demo = shell.offers(&["demo"]);
    assert!(
        demo.iter().all(|c| !HIDDEN.contains(&c.as_str())),
        "{name}: `{BIN} demo` offers a hidden command: {demo:?}"
    );
    let help = shell.offers(&["help", ""]);
    for (sub, _) in &commands {
        assert!(
            help.contains(sub),
            "{name}: `{BIN} help ` lacks {sub}: {help:?}"
        );
    }
    assert!(
        help.iter().all(|c| !HIDDEN.contains(&c.as_str())),
        "{name}: `{BIN} help ` offers a hidden command: {help:?}"
    );

    // Global flags before the subcommand, their values, then the subcommands.
    let values = shell.offers(&["--output", ""]);
    for v in ["human", "json"] {
        assert!(
            values.contains(&v.to_owned()),
            "{name}: `{BIN} --output ` lacks {v}: {values:?}"
        );
    }
    let after = shell.offers(&["--output", "json", ""]);
    assert!(
        after.contains(&"run".to_owned()) && after.contains(&"status".to_owned()),
        "{name}: `{BIN} --output json ` lacks the subcommands: {after:?}"
    );

    // After each subcommand: each of its flags, the global ones included.
    for (sub, flags) in &commands {
        let got = shell.offers(&[sub, "--"]);
        for flag in flags {
            assert!(
                got.contains(flag),
                "{name}: `{BIN} {sub} --` lacks {flag}: {got:?}"
            );
        }
    }

    // A flag's values, after a subcommand.
    let values = shell.offers(&["run", "--output", ""]);
    for v in ["human", "json"] {
        assert!(
            values.contains(&v.to_owned()),
            "{name}: `{BIN} run --output ` lacks {v}: {values:?}"
        );
    }
    let shells = shell.offers(&["completions", ""]);
    for v in ["bash", "zsh", "fish"] {
        assert!(
            shells.contains(&v.to_owned()),
            "{name}: `{BIN} completions ` lacks {v}: {shells:?}"
        );
    }
}

fn bash_completes_every_subcommand_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    check(&Bash(script("bash", dir.path())), "bash");
}

fn zsh_completes_every_subcommand_and_flag() {
    if tools_or_skip(&current_test(), &["zsh"]).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    script("zsh", dir.path());
    let driver = dir.path().join("drive.zsh");
    std::fs::write(&driver, ZSH_DRIVER).unwrap();
    check(
        &Zsh {
            script_dir: dir.path().to_owned(),
            driver,
        },
        "zsh",
    );
}

fn fish_completes_every_subcommand_and_flag() {
    if tools_or_skip(&current_test(), &["fish"]).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    check(&Fish(script("fish", dir.path())), "fish");
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[sync] bash_completes_every_subcommand_and_flag,
        #[sync] zsh_completes_every_subcommand_and_flag,
        #[sync] fish_completes_every_subcommand_and_flag,
    ],
}
