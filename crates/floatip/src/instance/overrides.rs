//! The overrides file: the operator's takeover/release of any instance (VRRP or etcd), kept in the
//! state directory so they survive a restart. Every election reads it at start and writes it through
//! [`update`], one writer at a time.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{anyhow, Context};

use crate::control::OverrideMode;

/// The name of the overrides file inside the state directory.
pub const FILE: &str = "overrides.json";

/// The overrides that survive a restart, by instance name. A missing file means none.
pub fn load(state_dir: &Path) -> anyhow::Result<BTreeMap<String, vrrp::Override>> {
    let path = state_dir.join(FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let stored: BTreeMap<String, OverrideMode> = serde_json::from_slice(&text).map_err(|e| {
        anyhow!(
            "{} is corrupt ({e}); it should look like {{\"files\": \"release\"}}. Delete it \
             (`rm {}`) to put every instance back to automatic, then repeat any takeover/release",
            path.display(),
            path.display()
        )
    })?;
    Ok(stored.into_iter().map(|(k, v)| (k, v.to_vrrp())).collect())
}

/// Sets (or, `Auto`, clears) one instance's override in the file, keeping the others: the protocol
/// loop and the etcd instances' tasks both write it, one at a time.
pub fn update(state_dir: &Path, name: &str, o: vrrp::Override) -> anyhow::Result<()> {
    static WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = load(state_dir)?;
    match o {
        vrrp::Override::Auto => all.remove(name),
        other => all.insert(name.to_string(), other),
    };
    save(state_dir, &all)
}

/// Writes the overrides atomically (temporary file, fsync, rename). `Auto` entries are not stored:
/// automatic is what a missing entry means.
pub fn save(state_dir: &Path, overrides: &BTreeMap<String, vrrp::Override>) -> anyhow::Result<()> {
    if !state_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .with_context(|| {
                format!("cannot create the state directory {}", state_dir.display())
            })?;
    }
    let stored: BTreeMap<&str, OverrideMode> = overrides
        .iter()
        .filter_map(|(k, v)| OverrideMode::from_vrrp(*v).map(|m| (k.as_str(), m)))
        .collect();
    let mut text = serde_json::to_string_pretty(&stored)?;
    text.push('\n');
    let path = state_dir.join(FILE);
    let tmp = state_dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        // Make the rename itself durable: a reboot right after must not bring back the old file.
        std::fs::File::open(state_dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}
