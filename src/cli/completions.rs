//! Shell completion scripts (bash, zsh, fish, …) from the clap command.
//!
//! What clap_complete's static generators get wrong for this binary, fixed here
//! rather than worked around by every operator:
//!
//! * they offer hidden subcommands (`demo-app`, `demo-ctl`, `demo-setup` are internal
//!   plumbing the demo and the tests call), so completion runs on a copy of the
//!   command without them;
//! * for a binary name with a hyphen, the bash script's dispatch loop and its `case`
//!   arms spell the same state differently (`vsync__orchestrate__subcmd__run` against
//!   `vsync__subcmd__orchestrate__subcmd__run`), so nothing completes past the
//!   subcommand. Upstream: clap-rs/clap#6421 and #6529, still open for
//!   clap_complete 4.6.12; the proposed fix (#6428) builds the arm label the way the
//!   loop builds it, which [`fix_bash_arms`] does to the generated text. When a
//!   release fixes it the rewrite matches nothing and changes nothing;
//! * the fish script completes no positional argument (clap-rs/clap#6295, open), so
//!   `completions <TAB>` offered files, and its guard for the top level fails on a
//!   line that does not parse yet, so `--output <TAB>` before a subcommand offered
//!   files too: [`fix_fish`] relaxes the guard and adds the positional values.

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use std::io::Write;

/// The name the scripts register completions for: what operators type.
pub const BIN: &str = "vsync-orchestrate";

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = visible(super::Cli::command());
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    let text = String::from_utf8_lossy(&out);
    match shell {
        Shell::Bash => fix_bash_arms(&text, BIN).into_bytes(),
        Shell::Fish => fix_fish(&text, &cmd).into_bytes(),
        _ => out,
    }
}

/// Writes the completion script for `shell` to `w`.
pub fn write(shell: Shell, w: &mut dyn Write) -> std::io::Result<()> {
    w.write_all(&script(shell))?;
    w.flush()
}

/// The root command without its hidden subcommands. clap cannot remove a
/// subcommand, so the root is rebuilt from its parts; only what completion reads
/// (name, version, about, arguments, subcommands) needs to survive. No subcommand
/// has hidden subcommands of its own (a test holds that), so one level is enough.
fn visible(cmd: Command) -> Command {
    let subs: Vec<Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    Command::new(BIN)
        .version(env!("VSYNC_ORCHESTRATE_VERSION"))
        .about(cmd.get_about().cloned().unwrap_or_default())
        .long_about(cmd.get_long_about().cloned().unwrap_or_default())
        .args(cmd.get_arguments().cloned())
        .subcommands(subs)
}

/// Renames the bash script's `case` arms to the spelling its dispatch loop
/// computes: the binary name's hyphens become `__` there, but `__subcmd__` in the
/// arms. Only arm labels (a line that is the label and `)`) are touched.
fn fix_bash_arms(script: &str, bin: &str) -> String {
    if !bin.contains('-') {
        return script.to_owned();
    }
    let wrong = bin.replace('-', "__subcmd__");
    let right = bin.replace('-', "__");
    let mut out = String::with_capacity(script.len());
    for line in script.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let label = body.trim_start();
        let indent = &body[..body.len() - label.len()];
        match label
            .strip_suffix(')')
            .and_then(|l| l.strip_prefix(wrong.as_str()))
        {
            Some(rest) if rest.is_empty() || rest.starts_with("__subcmd__") => {
                out.push_str(indent);
                out.push_str(&right);
                out.push_str(rest);
                out.push(')');
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// The fish script with the top-level guard relaxed and the positional
/// arguments' values (`completions bash|zsh|fish|…`) added.
///
/// The guard (`__fish_<bin>_needs_command`) parses the line with the global
/// options' spec and gives up when that fails, which it does while an option such
/// as `--output` still waits for its value: the option's own values then never
/// apply. A line that does not parse yet has no subcommand yet, so it answers
/// "needs a command" instead.
fn fix_fish(script: &str, cmd: &Command) -> String {
    let fn_base = format!("__fish_{}", BIN.replace('-', "_"));
    let guard = format!("function {fn_base}_needs_command\n");
    let mut out = String::with_capacity(script.len());
    let mut in_guard = false;
    let help_guard =
        format!("{fn_base}_using_subcommand help; and not __fish_seen_subcommand_from ");
    for line in script.split_inclusive('\n') {
        if line == guard {
            in_guard = true;
        } else if line.starts_with("end") {
            in_guard = false;
        }
        if in_guard && line.trim_end() == "    or return" {
            out.push_str("    or return 0\n");
        } else {
            out.push_str(&help_may_name_a_command(line, &help_guard));
        }
    }
    let using = format!("{fn_base}_using_subcommand");
    let has_using = script.contains(&format!("function {using}\n"));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        for arg in sub.get_positionals().filter(|a| !a.is_hide_set()) {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned())
                .filter(|v| {
                    v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                })
                .collect();
            if values.is_empty() {
                continue;
            }
            let name = sub.get_name();
            let values = values.join(" ");
            // Once one is given, not again (one positional with values each).
            let condition = if has_using {
                format!("{using} {name}; and not __fish_seen_subcommand_from {values}")
            } else {
                format!("__fish_seen_subcommand_from {name}; and not __fish_seen_subcommand_from {values}")
            };
            out.push_str(&format!(
                "complete -c {BIN} -n \"{condition}\" -f -a \"{values}\"\n"
            ));
        }
    }
    out
}

/// `help <TAB>` offers the commands only while none of them is on the line, but
/// the generator counts `help` itself among them, so it never offers any: the
/// word is taken out of that list.
fn help_may_name_a_command(line: &str, help_guard: &str) -> String {
    let Some(at) = line.find(help_guard) else {
        return line.to_owned();
    };
    let start = at + help_guard.len();
    let Some(len) = line[start..].find('"') else {
        return line.to_owned();
    };
    let list: Vec<&str> = line[start..start + len]
        .split(' ')
        .filter(|w| *w != "help")
        .collect();
    format!(
        "{}{}{}",
        &line[..start],
        list.join(" "),
        &line[start + len..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_labels_take_the_loops_spelling_and_nothing_else_changes() {
        let script = "        case \"${cmd},${i}\" in\n            vsync__orchestrate,run)\n                cmd=\"vsync__orchestrate__subcmd__run\"\n        vsync__orchestrate)\n        vsync__subcmd__orchestrate__subcmd__run)\n        vsync__subcmd__orchestratex)\n";
        let fixed = fix_bash_arms(script, "vsync-orchestrate");
        assert_eq!(
            fixed,
            "        case \"${cmd},${i}\" in\n            vsync__orchestrate,run)\n                cmd=\"vsync__orchestrate__subcmd__run\"\n        vsync__orchestrate)\n        vsync__orchestrate__subcmd__run)\n        vsync__subcmd__orchestratex)\n"
        );
        assert_eq!(fix_bash_arms(script, "vsync"), script);
    }

    #[test]
    fn hidden_subcommands_are_left_out_and_the_rest_keep_their_flags() {
        let cmd = visible(crate::cli::Cli::command());
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        for hidden in ["demo-app", "demo-ctl", "demo-setup"] {
            assert!(!names.contains(&hidden), "{names:?}");
        }
        let run = cmd.find_subcommand("run").expect("run");
        assert!(run
            .get_arguments()
            .any(|a| a.get_long() == Some("clean-stale")));
        assert!(cmd
            .get_arguments()
            .any(|a| a.get_long() == Some("state-dir")));
        assert!(cmd.get_version().is_some());
        for sub in crate::cli::Cli::command().get_subcommands() {
            assert!(
                sub.get_subcommands().all(|s| !s.is_hide_set()),
                "`{}` has a hidden subcommand: make `visible` recurse",
                sub.get_name()
            );
        }
    }
}
