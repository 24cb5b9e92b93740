//! Starting, stopping and restarting demo app processes: what the demo plan's
//! `command` restarter runs per app.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct AppFiles {
    pub pid: PathBuf,
    pub port: PathBuf,
    pub log: PathBuf,
}

pub fn files(dir: &Path, app: u32) -> AppFiles {
    let apps = dir.join("apps");
    AppFiles {
        pid: apps.join(format!("app-{app}.pid")),
        port: apps.join(format!("app-{app}.port")),
        log: apps.join(format!("app-{app}.log")),
    }
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Running, and not a zombie waiting for a parent that is not us to reap it.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, Some("Z") | Some("X"))
}

/// Starts app `n` detached (its own process group), logging to its log file.
pub fn start(dir: &Path, app: u32, port: u16) -> std::io::Result<u32> {
    let f = files(dir, app);
    std::fs::create_dir_all(f.pid.parent().expect("apps dir"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&f.log)?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    crate::api::child_env::scrub(&mut cmd);
    let child = cmd
        .args(["demo-app", "--port", &port.to_string()])
        .env("VSYNC_CONFIG_FILE", dir.join("vsync-config"))
        .env("VSYNC_PASSPHRASE_FILE", dir.join("passphrase"))
        .env_remove("VSYNC_CONFIG")
        .env_remove("VSYNC_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    // Atomic: a reader never sees the file half-written (a restart reads the port
    // file while another may be writing it). 0666 less the umask, as before.
    crate::api::atomic_write(&f.pid, child.id().to_string().as_bytes(), 0o666)?;
    crate::api::atomic_write(&f.port, port.to_string().as_bytes(), 0o666)?;
    Ok(child.id())
}

use std::os::unix::process::CommandExt;

pub fn stop(dir: &Path, app: u32) {
    let f = files(dir, app);
    let Some(pid) = std::fs::read_to_string(&f.pid)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: signalling a process this demo started and recorded.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let began = Instant::now();
    while alive(pid) && began.elapsed() < Duration::from_secs(5) {
        // Reap it if it is our child; otherwise just wait for it to go.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    let _ = std::fs::remove_file(&f.pid);
}

/// Why a demo app is not serving.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The app was never started in this sandbox (or its files were removed).
    #[error("app {app}: no {what} file under {}", .dir.display())]
    NoFile {
        app: u32,
        what: &'static str,
        dir: PathBuf,
    },
    /// The process is gone; `last_line` is the last line of its log.
    #[error("app {app} exited at boot: {last_line}")]
    ExitedAtBoot { app: u32, last_line: String },
    #[error("app {app} did not listen on 127.0.0.1:{port} within {}s", .timeout.as_secs())]
    NotListening {
        app: u32,
        port: u16,
        timeout: Duration,
    },
    #[error("app {app}: opening its lock file: {source}")]
    LockFile { app: u32, source: std::io::Error },
    #[error("app {app}: cannot lock: {source}")]
    Lock { app: u32, source: std::io::Error },
    #[error("app {app}: cannot start: {source}")]
    Start { app: u32, source: std::io::Error },
}

/// The number in one of an app's files (`.port`, `.pid`), if it holds one.
fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Waits until the app answers on its port, or says why it died.
pub fn wait_ready(dir: &Path, app: u32, timeout: Duration) -> Result<(), CtlError> {
    let f = files(dir, app);
    let no_file = |what| CtlError::NoFile {
        app,
        what,
        dir: dir.to_owned(),
    };
    let port: u16 = read_number(&f.port).ok_or_else(|| no_file("port"))?;
    let pid: i32 = read_number(&f.pid).ok_or_else(|| no_file("pid"))?;
    let began = Instant::now();
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        // SAFETY: non-blocking reap of a possibly exited child.
        let reaped = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid;
        if reaped || !alive(pid) {
            let log = std::fs::read_to_string(&f.log).unwrap_or_default();
            let last_line = log.lines().last().unwrap_or("(no output)").to_owned();
            return Err(CtlError::ExitedAtBoot { app, last_line });
        }
        if began.elapsed() > timeout {
            return Err(CtlError::NotListening { app, port, timeout });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `demo-ctl restart`: stop, start on the same port with the files as they are
/// now, and wait until it serves.
pub fn restart(dir: &Path, app: u32) -> Result<(), CtlError> {
    // One restart of an app at a time: a run killed mid-restart leaves its
    // `demo-ctl` running while `resume` restarts the same app.
    let apps = dir.join("apps");
    let _ = std::fs::create_dir_all(&apps);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(apps.join(format!("app-{app}.lock")))
        .map_err(|source| CtlError::LockFile { app, source })?;
    // SAFETY: flock on a file descriptor this function owns; released on close.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(CtlError::Lock {
            app,
            source: std::io::Error::last_os_error(),
        });
    }
    let port: u16 = read_number(&files(dir, app).port).ok_or_else(|| CtlError::NoFile {
        app,
        what: "port",
        dir: dir.to_owned(),
    })?;
    stop(dir, app);
    start(dir, app, port).map_err(|source| CtlError::Start { app, source })?;
    wait_ready(dir, app, Duration::from_secs(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_never_started_has_no_files_to_wait_on() {
        let d = tempfile::tempdir().unwrap();
        let e = wait_ready(d.path(), 2, Duration::from_millis(10)).unwrap_err();
        assert!(
            matches!(&e, CtlError::NoFile { app: 2, what: "port", dir } if dir == d.path()),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("app 2: no port file under {}", d.path().display())
        );
        let e = restart(d.path(), 3).unwrap_err();
        assert!(
            matches!(
                e,
                CtlError::NoFile {
                    app: 3,
                    what: "port",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn an_app_that_died_at_boot_is_told_by_its_log() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path(), 1);
        std::fs::create_dir_all(f.pid.parent().unwrap()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        std::fs::write(&f.pid, pid.to_string()).unwrap();
        std::fs::write(&f.port, free_port().unwrap().to_string()).unwrap();
        std::fs::write(
            &f.log,
            "booting\nWrongPassphraseError: cannot open the vault\n",
        )
        .unwrap();
        let e = wait_ready(d.path(), 1, Duration::from_secs(5)).unwrap_err();
        match e {
            CtlError::ExitedAtBoot { app, last_line } => {
                assert_eq!(app, 1);
                assert_eq!(last_line, "WrongPassphraseError: cannot open the vault");
            }
            other => panic!("{other:?}"),
        }
    }
}
