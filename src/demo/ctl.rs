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

/// Waits until the app answers on its port, or says why it died.
pub fn wait_ready(dir: &Path, app: u32, timeout: Duration) -> Result<(), String> {
    let f = files(dir, app);
    let port: u16 = std::fs::read_to_string(&f.port)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("no port file")?;
    let pid: i32 = std::fs::read_to_string(&f.pid)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("no pid file")?;
    let began = Instant::now();
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        // SAFETY: non-blocking reap of a possibly exited child.
        let reaped = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid;
        if reaped || !alive(pid) {
            let log = std::fs::read_to_string(&f.log).unwrap_or_default();
            let last = log.lines().last().unwrap_or("(no output)").to_owned();
            return Err(format!("app {app} exited at boot: {last}"));
        }
        if began.elapsed() > timeout {
            return Err(format!(
                "app {app} did not listen on 127.0.0.1:{port} within {}s",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `demo-ctl restart`: stop, start on the same port with the files as they are
/// now, and wait until it serves.
pub fn restart(dir: &Path, app: u32) -> Result<(), String> {
    // One restart of an app at a time: a run killed mid-restart leaves its
    // `demo-ctl` running while `resume` restarts the same app.
    let apps = dir.join("apps");
    let _ = std::fs::create_dir_all(&apps);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(apps.join(format!("app-{app}.lock")))
        .map_err(|e| format!("app {app}: {e}"))?;
    // SAFETY: flock on a file descriptor this function owns; released on close.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "app {app}: cannot lock: {}",
            std::io::Error::last_os_error()
        ));
    }
    let port: u16 = std::fs::read_to_string(files(dir, app).port)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("app {app}: no port file under {}", dir.display()))?;
    stop(dir, app);
    start(dir, app, port).map_err(|e| format!("app {app}: {e}"))?;
    wait_ready(dir, app, Duration::from_secs(20))
}
