//! The fixed scripts of the remote transport, each in a `.sh` file of its own so it
//! reads, diffs and syntax-checks as shell; the files are embedded byte for byte.
//!
//! They run as `/bin/sh -c SCRIPT vsync-orchestrate ARGS...` (behind `sudo -n` when
//! configured); arguments are paths, modes and owners, never a secret. Exit codes:
//! 3 not found, 4 permission, 5 conflict, 6 unsupported, 7 the value arrived
//! damaged. A file's fingerprint is `device:inode:mtime` (`stat -c`), which
//! rename(2) keeps: it identifies the very file a stage wrote without recording
//! anything derived from the value.

/// args: path. Prints `staged present` or `staged -`, then `current -`, or
/// `current` followed by the file's content.
pub(super) const PREFLIGHT: &str = include_str!("scripts/preflight.sh");

/// args: path, mode, owner, group, the `chown` spec, the kept link.
/// stdin: the value's SHA-256 (hex) on the first line, then the value itself.
/// Also keeps the current file as `$6` (`.<name>.prev.<run>`, see `keep_name`; a
/// hard link: the same inode, nothing copied), so activation is the rename alone
/// and `tidy` moves the link to `<path>.prev` after T1.
pub(super) const STAGE: &str = include_str!("scripts/stage.sh");

/// args: path. Prints the file's content.
pub(super) const READ_CURRENT: &str = include_str!("scripts/read_current.sh");

/// args: path. Prints `new FP` or `cur FP` on the first line, then the content.
pub(super) const READ_STAGED: &str = include_str!("scripts/read_staged.sh");

/// args: path, the fingerprint of the staged file.
pub(super) const ACTIVATE: &str = include_str!("scripts/activate.sh");

/// After T1: the link stage kept becomes `<path>.prev`. args: path, the kept link.
pub(super) const TIDY: &str = include_str!("scripts/tidy.sh");

/// args: path, the fingerprint of the staged file or "" when unknown, the kept link.
pub(super) const DISCARD: &str = include_str!("scripts/discard.sh");

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const ALL: [(&str, &str); 7] = [
        ("activate.sh", ACTIVATE),
        ("discard.sh", DISCARD),
        ("preflight.sh", PREFLIGHT),
        ("read_current.sh", READ_CURRENT),
        ("read_staged.sh", READ_STAGED),
        ("stage.sh", STAGE),
        ("tidy.sh", TIDY),
    ];

    /// A script that does not parse fails only when a host runs it; this fails here.
    /// Checked by this machine's `/bin/sh` (dash on Debian) and by bash, the two
    /// shells a host's `/bin/sh` usually is.
    #[test]
    fn every_script_file_is_embedded_and_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/vps_file/scripts");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sh"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            on_disk, embedded,
            "every script file is one of the constants"
        );
        for (name, text) in ALL {
            assert!(text.ends_with('\n'), "{name}");
            for shell in ["/bin/sh", "bash"] {
                let out = match Command::new(shell).args(["-n", "-c", text]).output() {
                    Ok(out) => out,
                    Err(e) if shell == "bash" && e.kind() == std::io::ErrorKind::NotFound => {
                        continue
                    }
                    Err(e) => panic!("{shell}: {e}"),
                };
                assert!(
                    out.status.success(),
                    "{name} does not parse with {shell} -n: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
