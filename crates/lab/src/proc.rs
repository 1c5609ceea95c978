//! Processes: one-shot commands with a time bound, and long-running children the lab cleans up.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sys;

/// How long a one-shot command may run before it is killed and reported as an error.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `argv` (argv[0] looked up in PATH), waits at most `timeout`, and returns its output
/// whatever the exit status. A command that outlives `timeout` is killed and reported as an error.
pub fn run_output(argv: &[&str], timeout: Duration) -> Result<Output> {
    let (prog, args) = argv.split_first().context("empty command line")?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut sleep = Duration::from_micros(200);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{}` did not finish within {timeout:?}; killed",
                argv.join(" ")
            );
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(20));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Like [`run_output`] but a non-zero exit status is an error that quotes the command line and its
/// stderr. Returns stdout as text.
pub fn run_checked(argv: &[&str], timeout: Duration) -> Result<String> {
    let out = run_output(argv, timeout)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child shared between its [`Proc`] handle and the lab's cleanup list. The child is only ever
/// reaped through this mutex, so while `reaped` is false its pid still belongs to it and signalling
/// it cannot hit an unrelated process.
pub(crate) struct ChildSlot {
    child: Child,
    status: Option<ExitStatus>,
}

impl ChildSlot {
    pub(crate) fn shared(child: Child) -> SharedChild {
        Arc::new(Mutex::new(ChildSlot {
            child,
            status: None,
        }))
    }

    fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
            }
        }
        self.status
    }

    /// Signals the child if it has not exited. Returns whether a signal was sent.
    pub(crate) fn signal(&mut self, sig: i32) -> bool {
        self.poll().is_none() && sys::kill(self.child.id(), sig)
    }
}

pub(crate) type SharedChild = Arc<Mutex<ChildSlot>>;

/// A process the lab started inside a host's namespace. Dropping a `Proc` does NOT stop it: the
/// [`Lab`](crate::Lab) that owns the namespace stops every process it started when it is dropped.
pub struct Proc {
    pid: u32,
    argv: Vec<String>,
    log: PathBuf,
    slot: SharedChild,
}

impl Proc {
    /// Starts `cmd` with stdin from /dev/null and stdout and stderr appended to `log`.
    pub(crate) fn start(mut cmd: Command, argv: &[&str], log: &Path) -> Result<Proc> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log file {}", log.display()))?;
        let file2 = file.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2)
            .spawn()
            .with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
        Ok(Proc {
            pid: child.id(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            log: log.to_path_buf(),
            slot: ChildSlot::shared(child),
        })
    }

    pub(crate) fn shared(&self) -> SharedChild {
        self.slot.clone()
    }

    /// The process id (of the command itself: `ip netns exec` execs it in place).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line it was started with.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`, `libc::SIGSTOP` to freeze it, `libc::SIGCONT`) unless
    /// it has already exited. Returns whether the signal was sent.
    pub fn signal(&self, sig: i32) -> bool {
        lock(&self.slot).signal(sig)
    }

    /// SIGKILL: a crash, as far as the network can tell.
    pub fn kill9(&self) -> bool {
        self.signal(libc::SIGKILL)
    }

    /// Whether it is still running.
    pub fn is_running(&self) -> bool {
        lock(&self.slot).poll().is_none()
    }

    /// Its exit status, if it has exited.
    pub fn try_status(&self) -> Option<ExitStatus> {
        lock(&self.slot).poll()
    }

    /// Waits at most `timeout` for it to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.signal(libc::SIGCONT);
        if let Some(st) = self.wait_exit(grace) {
            return Some(st);
        }
        self.kill9();
        self.wait_exit(Duration::from_secs(5))
    }

    /// Path of its log (stdout and stderr together).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log's contents so far (lossy UTF-8; empty if it cannot be read).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("pid", &self.pid)
            .field("argv", &self.argv)
            .field("log", &self.log)
            .finish()
    }
}

pub(crate) fn lock(slot: &SharedChild) -> std::sync::MutexGuard<'_, ChildSlot> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops every child in `slots`: SIGTERM (and SIGCONT, in case it was frozen) to all at once,
/// wait up to `grace` for all of them, then SIGKILL the rest and reap them (bounded).
pub(crate) fn stop_all(slots: &[SharedChild], grace: Duration) {
    for s in slots {
        let mut g = lock(s);
        g.signal(libc::SIGTERM);
        g.signal(libc::SIGCONT);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && slots.iter().any(|s| lock(s).poll().is_none()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    for s in slots {
        lock(s).signal(libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && slots.iter().any(|s| lock(s).poll().is_none()) {
        std::thread::sleep(Duration::from_millis(5));
    }
}
