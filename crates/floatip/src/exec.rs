//! Bounded child processes for checks and hooks: argv without a shell, in its own process group, stdout
//! and stderr read line by line, killed (the whole group) and reaped when it overruns its timeout.
//!
//! Owns: `run_bounded` and how a run ended (`Finished`), and the words a run's failures are reported in:
//! `describe_status` ("exit status 3", "killed by SIGSEGV") and `io_text`; durations in them are
//! `config::format_duration`'s.

use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command;
use tokio::time::Instant;

/// A line longer than this is cut (the rest is dropped, the line still logged).
const MAX_LINE: usize = 4096;
/// After a process exits, how long its output pipes may stay open (a background grandchild holding them)
/// before we stop reading.
const PIPE_GRACE: Duration = Duration::from_millis(200);
/// After SIGKILL, how long we wait to reap the child before leaving it to tokio's orphan reaper.
const REAP_BOUND: Duration = Duration::from_secs(2);

/// How a bounded child run ended.
#[derive(Debug)]
pub(crate) enum Finished {
    Exited(ExitStatus),
    /// Overran its timeout: the process group was sent SIGKILL. `reaped` says whether the child was
    /// waited for within [`REAP_BOUND`] (else tokio's orphan reaper collects it later).
    TimedOut {
        reaped: bool,
    },
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// A spawned child in its own process group. Dropping it before it was reaped kills the whole group
/// (a cancelled task or a daemon stopping mid-hook leaves nothing running).
struct GroupChild {
    child: tokio::process::Child,
    pgid: Option<nix::unistd::Pid>,
    reaped: bool,
}

impl GroupChild {
    fn spawn(mut cmd: Command) -> io::Result<GroupChild> {
        cmd.stdin(Stdio::null()).process_group(0).kill_on_drop(true);
        let child = cmd.spawn()?;
        let pgid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(nix::unistd::Pid::from_raw);
        Ok(GroupChild {
            child,
            pgid,
            reaped: false,
        })
    }

    fn kill_group(&mut self) {
        // The group leader is not reaped yet, so its pid (= the group id) cannot have been reused.
        if let (false, Some(pgid)) = (self.reaped, self.pgid) {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
        }
    }
}

/// Splits a byte stream into lines, each at most [`MAX_LINE`] bytes (the excess of a longer line is
/// dropped).
#[derive(Default)]
struct LineBuf {
    partial: Vec<u8>,
    overflow: bool,
}

impl LineBuf {
    fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&str)) {
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take(&bytes[..i]);
                    self.flush(&mut emit);
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.take(bytes);
                    bytes = &[];
                }
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.overflow |= bytes.len() > room;
    }

    fn flush(&mut self, mut emit: impl FnMut(&str)) {
        let line = String::from_utf8_lossy(&self.partial);
        let line = line.trim_end_matches('\r');
        if self.overflow {
            emit(&format!("{line}..."));
        } else {
            emit(line);
        }
        self.partial.clear();
        self.overflow = false;
    }

    fn finish(&mut self, emit: impl FnMut(&str)) {
        if !self.partial.is_empty() {
            self.flush(emit);
        }
    }
}

/// A child's stdout and stderr (each `None` when not piped or at its end), split into lines.
struct Pipes {
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    out_lines: LineBuf,
    err_lines: LineBuf,
}

impl Pipes {
    /// Reads what one of the pipes has and passes its complete lines to `on_line`; a pipe at its end
    /// (or failing) becomes `None`. Pends forever when neither is left. Cancel-safe.
    async fn read(&mut self, on_line: &mut impl FnMut(Stream, &str)) {
        let (mut out_buf, mut err_buf) = ([0u8; 2048], [0u8; 2048]);
        tokio::select! {
            n = read_opt(&mut self.stdout, &mut out_buf) => match n {
                Some(n) => self.out_lines.push(&out_buf[..n], |l| on_line(Stream::Stdout, l)),
                None => self.stdout = None,
            },
            n = read_opt(&mut self.stderr, &mut err_buf) => match n {
                Some(n) => self.err_lines.push(&err_buf[..n], |l| on_line(Stream::Stderr, l)),
                None => self.stderr = None,
            },
        }
    }
}

/// Runs `cmd` (stdin from /dev/null; stdout and stderr as the caller configured them: piped ones are
/// read and passed line by line to `on_line`) in its own process group, for at most `timeout`. On
/// overrun the whole group gets SIGKILL and the child is reaped. Never leaves a zombie behind.
pub(crate) async fn run_bounded(
    cmd: Command,
    timeout: Duration,
    mut on_line: impl FnMut(Stream, &str),
) -> io::Result<Finished> {
    let deadline = Instant::now() + timeout;
    let mut child = GroupChild::spawn(cmd)?;
    let mut pipes = Pipes {
        stdout: child.child.stdout.take(),
        stderr: child.child.stderr.take(),
        out_lines: LineBuf::default(),
        err_lines: LineBuf::default(),
    };

    let status = loop {
        tokio::select! {
            status = child.child.wait() => break Some(status),
            () = pipes.read(&mut on_line) => {}
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };

    let finished = match status {
        Some(Ok(status)) => {
            child.reaped = true;
            Finished::Exited(status)
        }
        Some(Err(e)) => return Err(e),
        None => {
            child.kill_group();
            let reaped = matches!(
                tokio::time::timeout(REAP_BOUND, child.child.wait()).await,
                Ok(Ok(_))
            );
            child.reaped = reaped;
            Finished::TimedOut { reaped }
        }
    };

    // Output still in the pipes: read it, but not forever (a background grandchild may hold them open).
    let grace = Instant::now() + PIPE_GRACE;
    while pipes.stdout.is_some() || pipes.stderr.is_some() {
        tokio::select! {
            () = pipes.read(&mut on_line) => {}
            _ = tokio::time::sleep_until(grace) => break,
        }
    }
    pipes.out_lines.finish(|l| on_line(Stream::Stdout, l));
    pipes.err_lines.finish(|l| on_line(Stream::Stderr, l));
    Ok(finished)
}

/// Reads from an optional pipe: `None` at end of stream or on error; pends forever when there is no
/// pipe (so a `select!` branch on it never fires). Cancel-safe.
async fn read_opt(pipe: &mut Option<impl AsyncRead + Unpin>, buf: &mut [u8]) -> Option<usize> {
    match pipe {
        Some(p) => match p.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// "exit status 3", "killed by SIGSEGV".
pub(crate) fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(signal) = status.signal() {
        match nix::sys::signal::Signal::try_from(signal) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {signal}"),
        }
    } else {
        status.to_string()
    }
}

/// An io error as a person reads it: "connection refused", not "Connection refused (os error 111)".
pub(crate) fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_bounded() {
        let mut lines = Vec::new();
        let mut buf = LineBuf::default();
        buf.push(b"one\r\ntw", |l| lines.push(l.to_string()));
        buf.push(b"o\nthree", |l| lines.push(l.to_string()));
        buf.finish(|l| lines.push(l.to_string()));
        assert_eq!(lines, ["one", "two", "three"]);
        let long = vec![b'x'; MAX_LINE + 10];
        let mut got = Vec::new();
        buf.push(&long, |l| got.push(l.len()));
        buf.push(b"\n", |l| got.push(l.len()));
        assert_eq!(got, [MAX_LINE + 3]);
    }

    #[test]
    fn readable_errors() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_text(&e), "connection refused");
    }
}
