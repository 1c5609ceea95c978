//! `floatip import keepalived [FILE]`: a keepalived configuration in, the floatip configuration that
//! behaves the same out (stdout or `--output`), and on stderr a summary of everything that has no
//! exact floatip equivalent, with keepalived's file:line for each.
//!
//! - [`reader`]: the file read the way keepalived reads it (comments, includes, `@` lines, `$`
//!   definitions, `~SEQ`), to logical lines with positions.
//! - [`tree`]: words and `{ }` blocks.
//! - [`map`], [`instance`], [`settings`], [`track`], [`script`]: keepalived's keywords to floatip's keys.
//!
//! Every output goes through floatip's own config parser before it is written: what does not pass
//! `floatip check` is never written (a key file not yet in place on this host is the one thing the
//! parser finds that is said, needs a person, and does not stop the writing: it is the host's state).
//!
//! Exit status: [`EXIT_COMPLETE`] (0) the output behaves as the input and passes `floatip check`;
//! [`EXIT_NEEDS_PERSON`] (3) something needs a person (see stderr): either the output was written,
//! passes `floatip check` as it is, and says what in `NEEDS A PERSON` comments, or nothing was written
//! (no instance floatip can run) and stderr says why; [`EXIT_REFUSED`] (2) the input has an error
//! keepalived itself reports (file:line on stderr), nothing was written; 1 anything else (no such input
//! file, the output file exists).

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
    .map(|i| verify(i, path))
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
    map::map(&nodes, &path.display().to_string(), config_id, exists).map(|i| verify(i, path))
}

/// The output through floatip's own config parser: what does not pass it is marked unwritable. A key
/// file is the host's state, not the file's: a key that is not in place yet (or a systemd credential,
/// readable only inside the unit) is said, needs a person, and does not stop the writing.
fn verify(mut imported: Imported, source: &Path) -> Imported {
    let runnable = imported.toml.lines().any(|l| l == "[[instance]]");
    let Err(e) = crate::config::parse(&imported.toml, Path::new("(the imported configuration)"))
    else {
        return imported;
    };
    if !runnable {
        imported.unwritable = Some(
            "no instance that floatip can run, so no floatip configuration (see above)".into(),
        );
        return imported;
    }
    let host_state = |p: &crate::config::Problem| {
        p.what.contains("key file \"") && !p.what.contains("is not an absolute path")
    };
    if e.problems.iter().all(host_state) {
        for p in &e.problems {
            imported.notes.push(Note {
                pos: reader::Pos {
                    file: std::rc::Rc::from(source),
                    line: 0,
                },
                text: map::flat(&format!(
                    "floatip check on this host: {} ({}); the configuration is written as it should be, and passes floatip check once the key is in place",
                    p.what, p.hint
                )),
                needs_person: true,
            });
        }
        return imported;
    }
    imported.unwritable = Some(format!(
        "the result does not pass floatip check (a fault of the import: please report it with the keepalived file):\n{e}"
    ));
    imported
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
        // No position: the input itself could not be read (no such file, permissions).
        Err(e) if e.pos.is_none() => {
            eprintln!("floatip: {e}");
            eprintln!("floatip: nothing was written");
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("floatip: keepalived reports this as an error too (keepalived -t); nothing was written");
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
    };
    if let Some(why) = &imported.unwritable {
        eprint!("{}", summary(&imported));
        eprintln!("floatip: nothing was written: {why}");
        return Ok(ExitCode::from(EXIT_NEEDS_PERSON));
    }
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
    if imported.unwritable.is_some() {
        s.push_str(&format!(
            "import NOT complete: nothing to write (exit status {EXIT_NEEDS_PERSON})\n"
        ));
    } else if person.is_empty() {
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
