//! The man pages `vsync-orchestrate man --dir` installs, and the systemd unit whose
//! `Documentation=` points at them: the pages render without a warning, carry
//! EXIT STATUS (every code the binary exits with), ENVIRONMENT and FILES, every
//! page a page names exists, `man` finds them where they were written, and the
//! shipped unit passes `systemd-analyze verify` and its security review.

use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use vsync_orchestrate::engine::Exit;
use vsync_orchestrate_testkit::service::{current_test, tools_or_skip};

const EXE: &str = env!("CARGO_BIN_EXE_vsync-orchestrate");

/// `systemd-analyze security` exposure the shipped unit must not exceed (0.0–10.0).
const MAX_EXPOSURE: f64 = 3.0;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// `man --dir <root>/man1`, as an install would: the files it printed.
fn install(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("man1");
    let out = Command::new(EXE)
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<PathBuf> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    let mut on_disk: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    on_disk.sort();
    let mut sorted = printed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "`man --dir` lists what it wrote");
    printed
}

/// The page's roff source with roff's escapes for `-` and `\&` undone, so names
/// read as typed.
fn plain_source(page: &Path) -> String {
    std::fs::read_to_string(page)
        .unwrap()
        .replace("\\-", "-")
        .replace("\\&", "")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
}

/// Renders with groff's man macros, every warning on: the text, and stderr.
fn groff(page: &Path) -> (String, String) {
    let out = Command::new("groff")
        // -P-cbou: plain text, no overstriking, so headings read as words.
        .args(["-man", "-Tutf8", "-ww", "-rLL=100n", "-P-cbou"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(out.status.success(), "groff {}", page.display());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rendered text of section `name`: from its heading to the next heading.
fn section<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("\n{name}\n"))? + name.len() + 2;
    let rest = &text[start..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            rest[i..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase())
        })
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn man_pages_install_render_cleanly_and_every_reference_exists() {
    if tools_or_skip(&current_test(), &["groff"]).is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let pages = install(root.path());
    let names: BTreeSet<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();

    // One page per visible command, and none for the hidden ones.
    for want in [
        "vsync-orchestrate.1",
        "vsync-orchestrate-run.1",
        "vsync-orchestrate-plan.1",
        "vsync-orchestrate-resume.1",
        "vsync-orchestrate-status.1",
        "vsync-orchestrate-man.1",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    assert!(
        names.iter().all(|n| !n.contains("demo-")),
        "a hidden command has a page: {names:?}"
    );

    let reference = Regex::new(r"\b(vsync-orchestrate(?:-[a-z][a-z-]*)?)\((\d)\)").unwrap();
    for page in &pages {
        let (text, warnings) = groff(page);
        assert_eq!(warnings, "", "groff warns on {}", page.display());
        // Headings of the sections an operator looks for.
        for heading in ["NAME", "SYNOPSIS", "EXIT STATUS", "ENVIRONMENT", "FILES"] {
            assert!(
                section(&text, heading).is_some(),
                "{} has no {heading}:\n{text}",
                page.display()
            );
        }
        assert!(!text.contains("\nEXTRA\n"), "{}", page.display());

        // Every code the binary exits with, and its meaning's first words.
        let exits = section(&text, "EXIT STATUS").unwrap();
        let exits = exits.split_whitespace().collect::<Vec<_>>().join(" ");
        for e in Exit::ALL {
            let first: String = e
                .meaning()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
                .replace('`', "");
            assert!(
                exits.contains(&format!("{} {first}", e.code())),
                "{}: exit {} ({first}) not in EXIT STATUS: {exits}",
                page.display(),
                e.code()
            );
        }

        // What the tool reads and writes.
        let env = section(&text, "ENVIRONMENT").unwrap();
        for var in ["VSYNC_ORCHESTRATE_STATE_DIR", "XDG_STATE_HOME", "RUST_LOG"] {
            assert!(env.contains(var), "{}: {var}: {env}", page.display());
        }
        let files = section(&text, "FILES").unwrap();
        for f in ["runs/", "escrow/", "vsync-orchestrate.lock"] {
            assert!(files.contains(f), "{}: {f}: {files}", page.display());
        }

        // Every page this one names is one of the pages written.
        for c in reference.captures_iter(&plain_source(page)) {
            let file = format!("{}.{}", &c[1], &c[2]);
            assert!(
                names.contains(&file),
                "{} refers to {}({}), which was not written",
                page.display(),
                &c[1],
                &c[2]
            );
        }
    }

    // The main page lists each command under SUBCOMMANDS by its page.
    let main = root.path().join("man1/vsync-orchestrate.1");
    let listed: BTreeSet<String> = reference
        .captures_iter(&plain_source(&main))
        .map(|c| format!("{}.{}", &c[1], &c[2]))
        .collect();
    for n in &names {
        if n != "vsync-orchestrate.1" {
            assert!(listed.contains(n), "the main page never names {n}");
        }
    }
}

/// `man` finds the pages where `--dir` put them (a `man1` directory under a
/// manpath), the way `man vsync-orchestrate-run` will after an install.
fn man_finds_the_installed_pages() {
    if tools_or_skip(&current_test(), &["man"]).is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    install(root.path());
    for page in ["vsync-orchestrate", "vsync-orchestrate-run"] {
        let out = Command::new("man")
            .arg("--manpath")
            .arg(root.path())
            .args(["-w", page])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "man -w {page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let found = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            found.trim(),
            root.path()
                .join(format!("man1/{page}.1"))
                .display()
                .to_string()
        );
        // And renders it, without a warning.
        let out = Command::new("man")
            .arg("--manpath")
            .arg(root.path())
            .arg(page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_STDERR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "man {page}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "man {page}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("EXIT STATUS"));
    }
}

/// The shipped unit verifies (with its `Documentation=man:` page installed on the
/// manpath `systemd-analyze` asks `man` about) and rates at most MAX_EXPOSURE in
/// systemd's own security review.
fn the_systemd_unit_verifies_and_is_hardened() {
    if tools_or_skip(&current_test(), &["systemd-analyze", "man"]).is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    install(root.path());
    let units = tempfile::tempdir().unwrap();
    for unit in ["vsync-orchestrate.service", "vsync-orchestrate.timer"] {
        std::fs::copy(repo("deploy/systemd").join(unit), units.path().join(unit)).unwrap();
    }
    let service = units.path().join("vsync-orchestrate.service");
    let timer = units.path().join("vsync-orchestrate.timer");

    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&service)
        .arg(&timer)
        .env("MANPATH", root.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(verify.status.success(), "systemd-analyze verify: {said}");
    assert_eq!(said.trim(), "", "systemd-analyze verify has remarks");

    // The check fails without the page: `verify` really looks it up.
    let without = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&service)
        .env("MANPATH", units.path())
        .output()
        .unwrap();
    assert!(!without.status.success(), "verify passed with no man page");

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={}", (MAX_EXPOSURE * 10.0) as u32))
        .arg(&service)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = Regex::new(r"Overall exposure level for \S+: (\d+\.\d)")
        .unwrap()
        .captures(&report)
        .unwrap_or_else(|| panic!("no exposure figure in: {report}"))[1]
        .parse()
        .unwrap();
    assert!(
        exposure <= MAX_EXPOSURE && security.status.success(),
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[sync] man_pages_install_render_cleanly_and_every_reference_exists,
        #[sync] man_finds_the_installed_pages,
        #[sync] the_systemd_unit_verifies_and_is_hardened,
    ],
}
