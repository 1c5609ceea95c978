//! Problems with a configuration file: what is wrong, where (file:line:column), and the hint; and the
//! collector ([`Cx`]) that turns byte spans of the text into those positions.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::keys;

/// Everything wrong with a configuration file. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// In file order.
    pub problems: Vec<Problem>,
}

/// One thing wrong, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole (it cannot be read).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub what: String,
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.what)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.what
            )?;
        }
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems against the text they are positioned in.
pub(super) struct Cx<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
    pub(super) problems: Vec<Problem>,
}

impl Cx<'_> {
    pub(super) fn at(
        &mut self,
        span: Range<usize>,
        what: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let (line, column) = position(self.text, span.start);
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            line,
            column,
            what: what.into(),
            hint: hint.into(),
        });
    }

    pub(super) fn toml_error(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        // TOML allows no control character but tab anywhere, not even in a comment; the parser's
        // own words ("expected newline") would send the author looking for the wrong thing.
        if let Some(c) = self.text[floor_char_boundary(self.text, span.start)..]
            .chars()
            .next()
            .filter(|c| c.is_control() && *c != '\t' && *c != '\n' && *c != '\r')
        {
            let name = match c {
                '\0' => " NUL".to_string(),
                '\u{7f}' => " DEL".to_string(),
                _ => String::new(),
            };
            self.at(
                span,
                format!(
                    "a control character (U+{:04X}{name}) here; TOML allows none, not even in a comment",
                    u32::from(c)
                ),
                "delete it (`cat -A` shows it as ^@, ^? or ^X; an editor may show nothing)",
            );
            return;
        }
        let message = e.message().trim().to_string();
        let line_text = line_at(self.text, span.start).trim();
        let hint = if line_text.starts_with("[instance]") || line_text.starts_with("[daemon.") {
            "instances are written [[instance]] (two brackets: there can be several)".to_string()
        } else if line_text.starts_with("[instance.check]") {
            "checks are written [[instance.check]] (two brackets: an instance can have several)"
                .into()
        } else if line_text.starts_with("[[daemon]]") {
            "the daemon table is written [daemon] (one bracket: there is only one)".into()
        } else if line_text.starts_with("[[instance.notify]]")
            || line_text.starts_with("[[instance.announce]]")
        {
            "notify and announce are single tables: [instance.notify], [instance.announce]".into()
        } else if message.starts_with("unknown field") {
            // Only reached when stage 0 could not read the file; name the table from serde's list.
            "see docs/config.md for the keys of each table".into()
        } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
            match key_on_line(line_text) {
                Some(key) => format!("{key} takes {}", keys::key_type(&key)),
                None => "check the value's type in docs/config.md: durations, addresses and names are quoted strings, numbers are bare, lists use [ ]".into(),
            }
        } else if message.contains("duplicate key") {
            "each key may appear once per table; remove one of them".into()
        } else {
            "fix the TOML syntax here: strings need double quotes, lists use [ ], each table header is on its own line".into()
        };
        // serde's type names mean nothing to a config author.
        let what = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
            .replace("expected i64", "expected a number")
            .replace("expected a sequence", "expected a list [ ... ]")
            .replace("expected a boolean", "expected true or false");
        self.at(span, what, hint);
    }

    pub(super) fn missing(&mut self, span: Range<usize>, key: &str, table: &str, example: &str) {
        self.at(
            span,
            format!("{table} has no `{key}`, which is required"),
            format!("add e.g. {example}"),
        );
    }
}

pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn line_at(text: &str, offset: usize) -> &str {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    &text[start..end]
}

fn key_on_line(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| key.to_string())
}
