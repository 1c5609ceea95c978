//! The configuration file: TOML in, a validated [`Config`] out, or every problem with file:line:column.
//!
//! Three stages, as in ripgrep's flags: [`walk`] reads every key of the file and reports each one no
//! table knows (with the hints of [`hints`]), then blanks it out; [`raw`] reads the rest into serde structs
//! that keep every value's position; [`validate`] turns them into the typed [`model`] and collects every
//! problem ([`error`]) instead of stopping at the first.
//!
//! A key is defined once, in [`keys`]: the key lists, the type hints and the reference tables of
//! `docs/config.md` ([`reference`]) come from there.

mod duration;
mod error;
mod hints;
mod keys;
mod model;
mod raw;
mod reference;
mod url;
mod validate;
mod walk;

use std::path::Path;

pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, Problem};
pub use model::*;
pub use reference::render_reference;
pub use url::{parse_http_url, HttpTarget};

use error::Cx;
use raw::RawFile;
use validate::validate;
use walk::blank_pair;

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => {
            let shown = path.display();
            let (what, hint) = match e.kind() {
                std::io::ErrorKind::NotFound => (
                    format!("cannot read {shown}: no such file"),
                    "create it from examples/floatip.toml (see docs/config.md), or pass --config PATH"
                        .to_string(),
                ),
                std::io::ErrorKind::PermissionDenied => (
                    format!("cannot read {shown}: permission denied"),
                    "run as root, or make the file readable by this user (it holds no secrets)"
                        .to_string(),
                ),
                std::io::ErrorKind::InvalidData => (
                    format!("cannot read {shown}: it is not UTF-8 text"),
                    "a config is a UTF-8 TOML file; check that the path is the right file".to_string(),
                ),
                _ if path.is_dir() => (
                    format!("cannot read {shown}: it is a directory"),
                    format!("pass the file itself, e.g. --config {}", Path::new(DEFAULT_PATH).display()),
                ),
                _ => (
                    format!("cannot read {shown}: {e}"),
                    "check the path and its permissions".to_string(),
                ),
            };
            Err(ConfigError {
                problems: vec![Problem {
                    path: path.to_path_buf(),
                    line: 0,
                    column: 0,
                    what,
                    hint,
                }],
            })
        }
    }
}

/// Validates `text` as if read from `path` (which only names the file in messages).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut cx = Cx {
        text,
        path,
        problems: Vec::new(),
    };

    // Stage 0: every key of every table, so that all unknown keys are reported, not only the first.
    let mut cleaned = None;
    // If even this fails, it is a syntax error that stage 1 reports with its position. (A TOML datetime
    // anywhere also lands there; stage 1 then reports it as a value of the wrong type.)
    if let Some(unknown) = walk::unknown_keys(text) {
        let mut blanked = text.to_string();
        for u in &unknown {
            cx.at(u.key_span.clone(), u.what.clone(), u.hint.clone());
            blank_pair(&mut blanked, u);
        }
        cleaned = Some(blanked);
    }

    // Stage 1: the raw structs. With the unknown keys blanked (spaces, so positions do not move), what can
    // still fail here is syntax or a value of the wrong TOML type.
    let walked = cleaned.is_some();
    let config = match toml::from_str::<RawFile>(cleaned.as_deref().unwrap_or(text)) {
        Ok(raw) => validate(&mut cx, raw),
        Err(e) => {
            // An error in the blanked text may be of our making (a blanking gone wrong): report the file's own.
            let e = match &cleaned {
                Some(c) if c != text => toml::from_str::<RawFile>(text).err().unwrap_or(e),
                _ => e,
            };
            // Stage 0 read the whole file, so it has listed every unknown key already.
            let listed = walked
                && cx
                    .problems
                    .iter()
                    .any(|p| p.what.starts_with("unknown key"));
            if !(listed && e.message().starts_with("unknown field")) {
                cx.toml_error(&e);
            }
            None
        }
    };

    // Stage 2 happened inside validate(); report everything in file order.
    let mut problems = cx.problems;
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup_by(|a, b| a.line == b.line && a.column == b.column && a.what == b.what);
    match config {
        Some(instances_and_daemon) if problems.is_empty() => Ok(instances_and_daemon),
        _ => {
            if problems.is_empty() {
                // validate() returned nothing without saying why: a bug here, but never an empty error.
                problems.push(Problem {
                    path: path.to_path_buf(),
                    line: 0,
                    column: 0,
                    what: "the configuration was refused without a reason (a floatip bug)".into(),
                    hint: "please report it with the file attached".into(),
                });
            }
            Err(ConfigError { problems })
        }
    }
}
