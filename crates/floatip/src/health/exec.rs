//! The exec check: healthy when the command exits 0 within the check's timeout. It runs through
//! [`crate::exec::run_bounded`], which kills and reaps the process group on overrun; stdout is discarded,
//! the last line of stderr goes into the failure reason.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::config::format_duration;
use crate::exec::{describe_status, io_text, run_bounded, Finished};

/// One run of `argv` (no shell). `Err` carries the exit status and the last line of stderr.
pub(super) async fn check(argv: &[String], timeout: Duration) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Err("exec: empty command".to_string());
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut last_line = String::new();
    let finished = run_bounded(cmd, timeout, |_, line| {
        if !line.trim().is_empty() {
            last_line = line.trim().to_string();
        }
    })
    .await
    .map_err(|e| format!("{program}: {}", io_text(&e)))?;
    let with_stderr = |text: String| {
        if last_line.is_empty() {
            text
        } else {
            format!("{text}: {last_line}")
        }
    };
    match finished {
        Finished::Exited(status) if status.success() => Ok(()),
        Finished::Exited(status) => Err(with_stderr(format!(
            "{program}: {}",
            describe_status(status)
        ))),
        Finished::TimedOut { .. } => Err(with_stderr(format!(
            "{program}: no result within {}, killed",
            format_duration(timeout)
        ))),
    }
}
