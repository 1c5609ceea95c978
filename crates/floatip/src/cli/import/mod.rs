//! `floatip import keepalived [FILE]`: a keepalived configuration in, the floatip configuration that
//! behaves the same out (stdout or `--output`), and on stderr a summary of everything that has no
//! exact floatip equivalent, with keepalived's file:line for each.
//!
//! - [`reader`]: the file read the way keepalived reads it (comments, includes, `@` lines, `$`
//!   definitions, `~SEQ`), to logical lines with positions.
//! - [`tree`]: words and `{ }` blocks.
//! - [`map`], [`instance`], [`settings`], [`track`], [`script`]: keepalived's keywords to floatip's keys.
//!
//! Exit status: [`EXIT_COMPLETE`] (0) the output behaves as the input; [`EXIT_NEEDS_PERSON`] (3) it
//! was written, but something in it needs a person (see stderr and the `NEEDS A PERSON` comments);
//! [`EXIT_REFUSED`] (2) the input is one keepalived itself would refuse (file:line on stderr), nothing
//! was written; 1 anything else (e.g. the output file exists).

mod glob;
pub mod instance;
pub mod map;
pub mod reader;
pub mod script;
pub mod settings;
pub mod track;
pub mod tree;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

pub use map::{Imported, Note};
pub use reader::ImportError;

pub const EXIT_COMPLETE: u8 = 0;
pub const EXIT_REFUSED: u8 = 2;
pub const EXIT_NEEDS_PERSON: u8 = 3;

/// The default input, keepalived's own default.
pub const DEFAULT_KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";

/// keepalived's default config-id: the host name up to its first dot.
pub fn default_config_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    host.split('.').next().unwrap_or("").to_string()
}

/// Imports the file at `path` (and what it includes).
pub fn import_file(path: &Path, config_id: &str) -> Result<Imported, ImportError> {
    let lines = reader::read(path, config_id)?;
    let nodes = tree::parse(&lines)?;
    map::map(
        &nodes,
        &path.display().to_string(),
        config_id,
        &script::is_executable,
    )
}

/// Imports `text` as if it were the file `path`; `exists` answers "is this program installed".
pub fn import_text(
    path: &Path,
    text: &str,
    config_id: &str,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Imported, ImportError> {
    let lines = reader::read_text(path, text, config_id)?;
    let nodes = tree::parse(&lines)?;
    map::map(&nodes, &path.display().to_string(), config_id, exists)
}

/// The command.
pub fn run(
    file: &Path,
    output: Option<&PathBuf>,
    config_id: Option<&str>,
    force: bool,
) -> Result<ExitCode> {
    let id = config_id.map_or_else(default_config_id, str::to_string);
    let imported = match import_file(file, &id) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("floatip: keepalived would refuse this configuration; nothing was written");
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
    };
    match output {
        Some(path) => {
            if path.exists() && !force {
                anyhow::bail!("{} exists; pass --force to replace it", path.display());
            }
            std::fs::write(path, &imported.toml)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            std::io::stdout().write_all(imported.toml.as_bytes())?;
        }
    }
    eprint!("{}", summary(&imported));
    Ok(ExitCode::from(if imported.complete() {
        EXIT_COMPLETE
    } else {
        EXIT_NEEDS_PERSON
    }))
}

/// What stderr says after an import: every item, then the verdict.
pub fn summary(imported: &Imported) -> String {
    let mut s = String::new();
    let (person, notes): (Vec<&Note>, Vec<&Note>) =
        imported.notes.iter().partition(|n| n.needs_person);
    if !person.is_empty() {
        s.push_str(&format!("needs a person ({}):\n", person.len()));
        for n in &person {
            s.push_str(&format!("  {}: {}\n", n.pos, n.text));
        }
    }
    if !notes.is_empty() {
        s.push_str(&format!("notes, nothing to do ({}):\n", notes.len()));
        for n in &notes {
            s.push_str(&format!("  {}: {}\n", n.pos, n.text));
        }
    }
    if person.is_empty() {
        s.push_str("import complete: the floatip configuration behaves as the keepalived one\n");
    } else {
        s.push_str(&format!(
            "import NOT complete: {} item(s) above need a person (exit status {EXIT_NEEDS_PERSON}); each is marked NEEDS A PERSON in the output\n",
            person.len()
        ));
    }
    s
}

#[cfg(test)]
mod tests;
