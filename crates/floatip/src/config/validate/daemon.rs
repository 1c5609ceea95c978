//! `[daemon]`: the settings of the process.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::error::Cx;
use crate::config::model::{DaemonConfig, DEFAULT_SOCKET, DEFAULT_STATE_DIR};
use crate::config::raw::RawDaemon;

pub(super) fn validate_daemon(cx: &mut Cx<'_>, raw: &RawDaemon) -> Option<DaemonConfig> {
    let mut ok = true;
    let mut config = DaemonConfig::default();
    if let Some(socket) = &raw.socket {
        let s = socket.get_ref();
        if !s.starts_with('/') {
            cx.at(
                socket.span(),
                format!("socket \"{s}\" is not an absolute path"),
                format!("write an absolute path, e.g. socket = \"{DEFAULT_SOCKET}\""),
            );
            ok = false;
        } else if s.len() > 107 {
            cx.at(
                socket.span(),
                format!(
                    "socket path is {} bytes long; a Unix socket path is at most 107",
                    s.len()
                ),
                format!("use a shorter path, e.g. \"{DEFAULT_SOCKET}\""),
            );
            ok = false;
        } else {
            config.socket = PathBuf::from(s);
        }
    }
    // `http`, or its old name `metrics`: one key under two names, so both at once is an error.
    let http = match (&raw.http, &raw.metrics) {
        (Some(_), Some(old)) => {
            cx.at(
                old.span(),
                "both http and metrics are set: metrics is the old name of http",
                "keep one: http = \"127.0.0.1:9797\" serves the status page, /status.json and /metrics",
            );
            ok = false;
            None
        }
        (Some(v), None) => Some(("http", v)),
        (None, Some(v)) => Some(("metrics", v)),
        (None, None) => None,
    };
    if let Some((key, value)) = http {
        match value.get_ref().parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => config.http = Some(addr),
            Ok(_) => {
                cx.at(
                    value.span(),
                    format!("{key} port 0 is not a fixed port"),
                    format!("give the port the page and Prometheus use, e.g. {key} = \"127.0.0.1:9797\""),
                );
                ok = false;
            }
            Err(_) => {
                cx.at(
                    value.span(),
                    format!("{key} \"{}\" is not an ADDRESS:PORT", value.get_ref()),
                    format!("write an IP and port, e.g. {key} = \"127.0.0.1:9797\" (IPv6: \"[::1]:9797\"; no host names); remove the key to turn the listener off"),
                );
                ok = false;
            }
        }
    }
    if let Some(dir) = &raw.state_dir {
        if dir.get_ref().starts_with('/') {
            config.state_dir = PathBuf::from(dir.get_ref());
        } else {
            cx.at(
                dir.span(),
                format!("state_dir \"{}\" is not an absolute path", dir.get_ref()),
                format!("write an absolute path, e.g. state_dir = \"{DEFAULT_STATE_DIR}\""),
            );
            ok = false;
        }
    }
    if let Some(level) = &raw.log_level {
        match check_log_filter(level.get_ref()) {
            Ok(()) => config.log_level = Some(level.get_ref().clone()),
            Err(e) => {
                cx.at(
                    level.span(),
                    format!("log_level \"{}\": {e}", level.get_ref()),
                    "use one of off, error, warn, info, debug, trace, optionally per module: \"info,floatip=debug\"",
                );
                ok = false;
            }
        }
    }
    ok.then_some(config)
}

fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    if filter.trim().is_empty() {
        return Err("empty".into());
    }
    for directive in filter.split(',') {
        let directive = directive.trim();
        let (target, level) = match directive.split_once('=') {
            Some((t, l)) => (Some(t), l),
            None => (None, directive),
        };
        if let Some(t) = target {
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_:-".contains(c))
            {
                return Err(format!("\"{t}\" is not a module name"));
            }
        }
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("\"{level}\" is not a level"));
        }
    }
    Ok(())
}
