//! Reading a keepalived configuration the way keepalived does, line by line, before any keyword is
//! looked at: `#` and `!` comments, `include` (and its variants) with globs relative to the including
//! file, `@ID` / `@^ID` conditional lines, `$NAME=VALUE` definitions (multi-line with `\`) and their
//! substitution (`$NAME`, `${NAME}`, the predefined `${_PWD}` ...), and `~SEQ` / `~SEQx` / `~LST`
//! repetition. The output is the list of logical lines, each with the file:line it came from; the
//! tokens and blocks are [`super::tree`]'s job.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::glob::{glob, has_glob};

/// Where something was written: a file and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Rc<Path>,
    pub line: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// An input keepalived itself would refuse (or that cannot be read): where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub pos: Option<Pos>,
    pub what: String,
    pub hint: String,
}

impl ImportError {
    pub fn at(pos: &Pos, what: impl Into<String>, hint: impl Into<String>) -> ImportError {
        ImportError {
            pos: Some(pos.clone()),
            what: what.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pos {
            Some(pos) => write!(f, "{pos}: {}", self.what)?,
            None => write!(f, "{}", self.what)?,
        }
        write!(f, "\n  hint: {}", self.hint)
    }
}

impl std::error::Error for ImportError {}

/// One logical line after conditionals, definitions and repetition, comments removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub pos: Pos,
    pub text: String,
}

/// Lines one file may expand to; far above any real configuration, low enough that a `~SEQ` bomb or a
/// self-feeding definition ends with an error instead of eating the machine.
const MAX_LINES: usize = 200_000;
const MAX_DEPTH: usize = 32;
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Reads `path` and everything it includes, as keepalived started with `-i config_id` would.
pub fn read(path: &Path, config_id: &str) -> Result<Vec<Line>, ImportError> {
    let text = std::fs::read(path).map_err(|e| ImportError {
        pos: None,
        what: if e.kind() == std::io::ErrorKind::NotFound {
            format!("no such file: {}", path.display())
        } else {
            format!("cannot read {}: {e}", path.display())
        },
        hint: "pass the keepalived configuration file, e.g. floatip import keepalived /etc/keepalived/keepalived.conf".into(),
    })?;
    let mut reader = Reader::new(config_id);
    reader.file(path, &String::from_utf8_lossy(&text), 0)?;
    Ok(reader.out)
}

/// Reads `text` as if it were the file `path` (includes are resolved next to `path`).
pub fn read_text(path: &Path, text: &str, config_id: &str) -> Result<Vec<Line>, ImportError> {
    let mut reader = Reader::new(config_id);
    reader.file(path, text, 0)?;
    Ok(reader.out)
}

struct Reader {
    config_id: String,
    vars: HashMap<String, String>,
    /// The files being read, outermost first (an include of one of them is a loop).
    stack: Vec<PathBuf>,
    out: Vec<Line>,
}

impl Reader {
    fn new(config_id: &str) -> Reader {
        Reader {
            config_id: config_id.to_string(),
            vars: HashMap::new(),
            stack: Vec::new(),
            out: Vec::new(),
        }
    }

    fn file(&mut self, path: &Path, text: &str, depth: usize) -> Result<(), ImportError> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.stack.push(canonical);
        let file: Rc<Path> = Rc::from(path);
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let pos = Pos {
                file: file.clone(),
                line: i + 1,
            };
            let mut line = strip_comment(lines[i]).to_string();
            i += 1;
            // A multi-line definition: `$NAME= \` and every following line ending in `\`.
            if definition(line.trim_start()).is_some() {
                while line.trim_end().ends_with('\\') && i < lines.len() {
                    let cut = line.trim_end().len() - 1;
                    line.truncate(cut);
                    line.push('\n');
                    line.push_str(strip_comment(lines[i]));
                    i += 1;
                    if line.len() > MAX_LINE_BYTES * 16 {
                        return Err(ImportError::at(
                            &pos,
                            "a definition that never ends",
                            "end a multi-line $NAME= definition with a line without a trailing \\",
                        ));
                    }
                }
                if line.trim_end().ends_with('\\') {
                    let cut = line.trim_end().len() - 1;
                    line.truncate(cut);
                }
            }
            self.line(&line, &pos, depth)?;
        }
        self.stack.pop();
        Ok(())
    }

    fn line(&mut self, text: &str, pos: &Pos, depth: usize) -> Result<(), ImportError> {
        if depth > MAX_DEPTH {
            return Err(ImportError::at(
                pos,
                "definitions, sequences or includes nested too deeply",
                "a definition that uses itself? keepalived would loop on it too",
            ));
        }
        if self.out.len() > MAX_LINES {
            return Err(ImportError::at(
                pos,
                format!("the configuration expands to more than {MAX_LINES} lines"),
                "a ~SEQ/~LST range or a definition that repeats far more than intended",
            ));
        }
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(());
        }
        // Includes are recognised before conditionals and substitution, as keepalived does.
        let first = trimmed.split_whitespace().next().unwrap_or("");
        if matches!(
            first,
            "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
        ) {
            let arg = trimmed[first.len()..]
                .trim()
                .trim_matches(|c| c == '"' || c == '\'');
            return self.include(arg, first, pos, depth);
        }
        let mut text = trimmed;
        if let Some(rest) = text.strip_prefix('@') {
            let (word, rest) = split_word(rest);
            let (negate, id) = match word.strip_prefix('^') {
                Some(id) => (true, id),
                None => (false, word),
            };
            if (id == self.config_id) == negate {
                return Ok(());
            }
            text = rest.trim_start();
            if text.is_empty() {
                return Ok(());
            }
        }
        if let Some((name, value)) = definition(text) {
            self.vars.insert(name.to_string(), value.trim().to_string());
            return Ok(());
        }
        if text.starts_with("~SEQ(") || text.starts_with("~SEQx(") || text.starts_with("~LST(") {
            return self.repeat(text, pos, depth);
        }
        let expanded = self.substitute(text, pos)?;
        if expanded.contains('\n') {
            for piece in expanded.split('\n') {
                self.line(strip_comment(piece), pos, depth + 1)?;
            }
            return Ok(());
        }
        if expanded != text {
            // A substituted line may itself be conditional, a definition or a sequence.
            let t = expanded.trim_start();
            if t.starts_with('@') || t.starts_with('~') || definition(t).is_some() {
                return self.line(&expanded, pos, depth + 1);
            }
        }
        self.out.push(Line {
            pos: pos.clone(),
            text: expanded,
        });
        Ok(())
    }

    fn include(
        &mut self,
        pattern: &str,
        how: &str,
        pos: &Pos,
        depth: usize,
    ) -> Result<(), ImportError> {
        if pattern.is_empty() {
            return Err(ImportError::at(
                pos,
                format!("`{how}` without a file name"),
                "write the file to include, e.g. include /etc/keepalived/conf.d/*.conf",
            ));
        }
        let base = pos.file.parent().unwrap_or(Path::new("."));
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let files = glob(&full);
        if files.is_empty() {
            // `include` ignores a pattern that matches nothing; the checking variants refuse it.
            let refuse = match how {
                "includea" => true,
                "includem" => !has_glob(pattern),
                "includew" => has_glob(pattern),
                _ => false,
            };
            if !refuse {
                return Ok(());
            }
            return Err(ImportError::at(
                pos,
                format!("`{how} {pattern}` matches no file"),
                format!(
                    "keepalived refuses this with {how}; create the file or use plain `include`"
                ),
            ));
        }
        for file in files {
            let canonical = file.canonicalize().unwrap_or_else(|_| file.clone());
            if self.stack.contains(&canonical) {
                return Err(ImportError::at(
                    pos,
                    format!("{} includes itself (through {})", file.display(), pattern),
                    "remove the include that closes the loop",
                ));
            }
            let text = match std::fs::read(&file) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if how == "include" => {
                    let _ = e;
                    continue;
                }
                Err(e) => {
                    return Err(ImportError::at(
                        pos,
                        format!("cannot read included {}: {e}", file.display()),
                        "check the path and its permissions",
                    ))
                }
            };
            self.file(&file, &text, depth + 1)?;
        }
        Ok(())
    }

    /// `~SEQ(var, start, step, end) rest`, `~SEQx(...)`, `~LST(var, v1, v2, ...)` / `~LST({a, b}, {1, 2}, ...)`.
    fn repeat(&mut self, text: &str, pos: &Pos, depth: usize) -> Result<(), ImportError> {
        let open = text.find('(').unwrap_or(0);
        let kind = &text[1..open];
        let close = matching_paren(text, open).ok_or_else(|| {
            ImportError::at(
                pos,
                format!("~{kind}( without its closing )"),
                "write ~SEQ(VAR, START, STEP, END) rest-of-line",
            )
        })?;
        let args = &text[open + 1..close];
        let rest = text[close + 1..].trim_start().to_string();
        let mut runs: Vec<Vec<(String, String)>> = Vec::new();
        if kind == "LST" {
            let items = split_list(args);
            let Some((names, values)) = items.split_first() else {
                return Err(ImportError::at(
                    pos,
                    "~LST() without a variable",
                    "write ~LST(VAR, VALUE1, VALUE2) rest-of-line",
                ));
            };
            let names = split_list(names.trim().trim_start_matches('{').trim_end_matches('}'));
            if values.is_empty() {
                return Err(ImportError::at(
                    pos,
                    "~LST without values",
                    "give at least one value: ~LST(VAR, VALUE1, ...)",
                ));
            }
            for value in values {
                let vals = split_list(value.trim().trim_start_matches('{').trim_end_matches('}'));
                if vals.len() != names.len() {
                    return Err(ImportError::at(
                        pos,
                        format!(
                            "~LST value {value} has {} parts for {} variables",
                            vals.len(),
                            names.len()
                        ),
                        "give each {...} value as many parts as there are variables",
                    ));
                }
                runs.push(
                    names
                        .iter()
                        .map(|n| n.trim().to_string())
                        .zip(vals.iter().map(|v| v.trim().to_string()))
                        .collect(),
                );
            }
        } else {
            let hex = kind == "SEQx";
            let parts: Vec<String> = split_list(args)
                .iter()
                .map(|s| s.trim().to_string())
                .collect();
            let bad = || {
                ImportError::at(
                    pos,
                    format!("~{kind}({args}) is not VAR, [START,] [STEP,] END with integers"),
                    "write e.g. ~SEQ(N, 0, 1, 3) or ~SEQx(N, 0x90, 0x10, 0xc0)",
                )
            };
            let num = |s: &str| -> Option<i64> {
                let (neg, s) = match s.strip_prefix('-') {
                    Some(s) => (true, s),
                    None => (false, s),
                };
                let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(h) => i64::from_str_radix(h, 16).ok()?,
                    None => s.parse().ok()?,
                };
                Some(if neg { -v } else { v })
            };
            let var = parts
                .first()
                .filter(|v| !v.is_empty())
                .ok_or_else(bad)?
                .clone();
            let nums: Vec<i64> = parts[1..]
                .iter()
                .map(|p| num(p))
                .collect::<Option<_>>()
                .ok_or_else(bad)?;
            let (start, step, end) = match nums[..] {
                [end] => (
                    if end < 0 { -1 } else { 1 },
                    if end < 0 { -1 } else { 1 },
                    end,
                ),
                [start, end] => (start, if end >= start { 1 } else { -1 }, end),
                [start, step, end] => (start, step, end),
                _ => return Err(bad()),
            };
            if step == 0 {
                return Err(bad());
            }
            let count = if (step > 0 && start > end) || (step < 0 && start < end) {
                0
            } else {
                (i128::from(end) - i128::from(start)) / i128::from(step) + 1
            };
            if count > MAX_LINES as i128 {
                return Err(ImportError::at(
                    pos,
                    format!("~{kind}({args}) repeats {count} times"),
                    "check START, STEP and END",
                ));
            }
            let mut v = start;
            while (step > 0 && v <= end) || (step < 0 && v >= end) {
                let shown = if hex { format!("{v:x}") } else { v.to_string() };
                runs.push(vec![(var.clone(), shown)]);
                match v.checked_add(step) {
                    Some(n) => v = n,
                    None => break,
                }
            }
        }
        for run in runs {
            for (name, value) in &run {
                self.vars.insert(name.clone(), value.clone());
            }
            self.line(&rest, pos, depth + 1)?;
            for (name, _) in &run {
                self.vars.remove(name);
            }
        }
        Ok(())
    }

    /// Replaces `$NAME` (followed by whitespace or the end) and `${NAME}` with their values, again and
    /// again (a value may name another definition); an undefined name stays as written.
    fn substitute(&self, text: &str, pos: &Pos) -> Result<String, ImportError> {
        let mut text = text.to_string();
        for _ in 0..64 {
            let (next, changed) = self.substitute_once(&text, pos);
            if next.len() > MAX_LINE_BYTES * 64 {
                return Err(ImportError::at(
                    pos,
                    "a definition expands to a huge line",
                    "a definition that includes itself?",
                ));
            }
            // A multi-line value: its lines are read one by one (each substituted when it is
            // read, so a definition among them applies to the lines after it).
            if !changed || next.contains('\n') {
                return Ok(next);
            }
            text = next;
        }
        Err(ImportError::at(
            pos,
            "a definition that keeps expanding (it refers to itself)",
            "remove the self-reference from the $NAME= definition",
        ))
    }

    fn substitute_once(&self, text: &str, pos: &Pos) -> (String, bool) {
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(inner) = after.strip_prefix('{') {
                if let Some(end) = inner.find('}') {
                    if let Some(value) = self.value(&inner[..end], pos) {
                        out.push_str(&value);
                        changed = true;
                        rest = &inner[end + 1..];
                        continue;
                    }
                }
            } else {
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                let name = &after[..len];
                let followed_ok = after[len..].chars().next().is_none_or(char::is_whitespace);
                if !name.is_empty() && followed_ok {
                    if let Some(value) = self.value(name, pos) {
                        out.push_str(&value);
                        changed = true;
                        rest = &after[len..];
                        continue;
                    }
                }
            }
            out.push('$');
            rest = after;
        }
        out.push_str(rest);
        (out, changed)
    }

    fn value(&self, name: &str, pos: &Pos) -> Option<String> {
        let mut words = name.split_whitespace();
        match words.next()? {
            "_PWD" => Some(
                pos.file
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
                    .to_string(),
            ),
            "_INSTANCE" => Some(self.config_id.clone()),
            "_HASH" => Some("#".into()),
            "_BANG" => Some("!".into()),
            // CREDENTIALS_DIRECTORY is set by systemd for the running unit only: an import run
            // from a shell keeps the reference (the auth mapping writes $CREDENTIALS_DIRECTORY).
            "_ENV" => match words.next()? {
                "CREDENTIALS_DIRECTORY" => Some(
                    std::env::var("CREDENTIALS_DIRECTORY")
                        .unwrap_or_else(|_| "$CREDENTIALS_DIRECTORY".into()),
                ),
                var => Some(std::env::var(var).unwrap_or_default()),
            },
            // Deterministic on purpose: the import of one file is always the same output.
            "_RANDOM" => Some(words.next().unwrap_or("0").to_string()),
            n if name == n => self.vars.get(n).cloned(),
            _ => None,
        }
    }
}

/// The line without its comment: `#` or `!` outside quotes, anywhere on the line.
pub(crate) fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#' | '!') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// `$NAME=VALUE` (no space before `=`; NAME from `A-Za-z0-9_`, not starting with a digit).
fn definition(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('$')?;
    let eq = body.find('=')?;
    let name = &body[..eq];
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    Some((name, &body[eq + 1..]))
}

fn split_word(text: &str) -> (&str, &str) {
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (&text[..end], &text[end..])
}

fn matching_paren(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits on commas that are not inside `{...}`.
fn split_list(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text[start..].trim().is_empty() || !out.is_empty() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests;
