//! The CLI commands that talk to a running daemon: status, takeover, release, auto, reload, events.

use std::path::Path;
use std::process::ExitCode;

use crate::control::{call, status_document, Request, Response};

use super::render::{render, render_groups};

/// `floatip status [NAME] [--json]`. `--json` prints `{"version":1,"instances":[...]}`.
pub fn cmd_status(socket: &Path, name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let response = call(
        socket,
        Request::Status {
            instance: name.map(str::to_string),
        },
    )?;
    match response {
        Response::Status { instances, groups } => {
            if json {
                let out = status_document(&instances, &groups);
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}{}", render_groups(&groups), render(&instances));
            }
            Ok(ExitCode::SUCCESS)
        }
        other => Ok(print_outcome(other)),
    }
}

/// `floatip events [NAME] [--json]`: one line per event, flushed at once, until the stream ends. Exit
/// status 3 when the daemon dropped the stream because it fell behind.
pub fn cmd_events(socket: &Path, name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let lagged = crate::control::events::follow(socket, name, |line, record| {
        let mut out = stdout.lock();
        if json {
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{}", record.human())?;
        }
        out.flush()
    })?;
    match lagged {
        Some(dropped) => {
            eprintln!("floatip: the daemon closed this stream: it fell behind and {dropped} events were dropped; run `floatip events` again to go on");
            Ok(ExitCode::from(3))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// `floatip takeover NAME`
pub fn cmd_takeover(socket: &Path, name: &str) -> anyhow::Result<ExitCode> {
    command(
        socket,
        Request::Takeover {
            instance: name.to_string(),
        },
    )
}

/// `floatip release NAME [--force]`
pub fn cmd_release(socket: &Path, name: &str, force: bool) -> anyhow::Result<ExitCode> {
    command(
        socket,
        Request::Release {
            instance: name.to_string(),
            force,
        },
    )
}

/// `floatip auto NAME`
pub fn cmd_auto(socket: &Path, name: &str) -> anyhow::Result<ExitCode> {
    command(
        socket,
        Request::Auto {
            instance: name.to_string(),
        },
    )
}

/// `floatip reload`
pub fn cmd_reload(socket: &Path) -> anyhow::Result<ExitCode> {
    command(socket, Request::Reload)
}

fn command(socket: &Path, request: Request) -> anyhow::Result<ExitCode> {
    Ok(print_outcome(call(socket, request)?))
}

fn print_outcome(response: Response) -> ExitCode {
    match response {
        Response::Done { message } => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Response::Error { message } => {
            eprintln!("floatip: {message}");
            ExitCode::FAILURE
        }
        Response::Status { .. } => {
            eprintln!(
                "floatip: the daemon answered with a status where a confirmation was expected"
            );
            ExitCode::FAILURE
        }
    }
}
