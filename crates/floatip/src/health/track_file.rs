//! Track files (keepalived's `track_file`): a number an operator or a cron job writes into a file moves
//! the instance's priority, so `echo 200 > /run/floatip/drain` drains a host.
//!
//! Owns: reading a file as keepalived does ([`parse_number`], [`read`]), the arithmetic of one file
//! ([`effect`]) and of an instance ([`evaluate`]), what the daemon keeps per file for status and metrics
//! ([`TrackFileState`]), and the watcher task ([`spawn`]): inotify on each file's directory, so a file
//! created later and an editor's rename over it count, reporting every change to the daemon loop.
//!
//! keepalived's facts, kept: the first 127 bytes are read as C's `strtol(buf, NULL, 0)` (leading
//! blanks, a sign, `0x` hex, a leading `0` octal; the number ends at the first other character; no
//! digits is 0); a missing, unreadable or empty file is 0; a number outside 32 bits is ignored (the
//! value before it stays); a deleted or moved-away file is 0. The product `number x weight` is kept
//! within -254..=253; weight 0 makes any non-zero number FAULT, and a product of -254 is FAULT.
//! floatip's one addition (the shared contract): a priority that the track files bring to 0 or below
//! is FAULT too (keepalived would keep advertising priority 1).

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::TaskSet;
use crate::config::TrackFileConfig;

/// keepalived reads this much of the file (a 128-byte buffer with its terminating zero).
const READ_MAX: usize = 127;
/// How often a watcher tries again to watch a directory that does not exist (yet).
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// The lowest product: FAULT (keepalived's -254).
const FAULT_PRODUCT: i64 = -254;
/// The highest product (keepalived's 253).
const MAX_PRODUCT: i64 = 253;

/// What one reading of a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// A number (0 for a file without digits).
    Number(i64),
    /// No file (or it cannot be opened): counts as 0.
    Missing,
    /// A number outside 32 bits: ignored, the value before it stays.
    OutOfRange(String),
}

/// C's `strtol(text, NULL, 0)` as keepalived uses it: `None` when the number does not fit 32 bits (it
/// accepts up to `i32::MAX + 1`, as keepalived does); a text without a number is `Some(0)`.
pub fn parse_number(text: &[u8]) -> Option<i64> {
    let mut rest = text;
    while let [b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c', tail @ ..] = rest {
        rest = tail;
    }
    let negative = match rest {
        [b'-', tail @ ..] => {
            rest = tail;
            true
        }
        [b'+', tail @ ..] => {
            rest = tail;
            false
        }
        _ => false,
    };
    let radix: u32 = match rest {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => {
            rest = &rest[2..];
            16
        }
        [b'0', ..] => 8,
        _ => 10,
    };
    let mut value: i128 = 0;
    for &b in rest {
        let Some(digit) = (b as char).to_digit(radix) else {
            break;
        };
        value = value * i128::from(radix) + i128::from(digit);
        if value > i128::from(i64::MAX) {
            return None;
        }
    }
    let value = if negative { -value } else { value };
    (i128::from(i32::MIN)..=i128::from(i32::MAX) + 1)
        .contains(&value)
        .then_some(value as i64)
}

/// Reads `path` as keepalived does (non-blocking, so a FIFO put there cannot hang the watcher).
pub fn read(path: &Path) -> Reading {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return Reading::Missing;
    };
    let mut buf = Vec::with_capacity(READ_MAX);
    if file.take(READ_MAX as u64).read_to_end(&mut buf).is_err() {
        return Reading::Number(0);
    }
    match parse_number(&buf) {
        Some(n) => Reading::Number(n),
        None => Reading::OutOfRange(String::from_utf8_lossy(&buf).trim().to_string()),
    }
}

/// What one file does to its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Added to the priority (0 with weight 0 and a zero number).
    Offset(i64),
    /// The instance is in FAULT.
    Fault,
}

/// keepalived's arithmetic of one file: weight 0 makes any non-zero number FAULT; otherwise the
/// product is kept within -254..=253, and -254 is FAULT.
pub fn effect(weight: i32, value: i64) -> Effect {
    if weight == 0 {
        return if value == 0 {
            Effect::Offset(0)
        } else {
            Effect::Fault
        };
    }
    let product = (i128::from(value) * i128::from(weight))
        .clamp(i128::from(FAULT_PRODUCT), i128::from(MAX_PRODUCT)) as i64;
    if product == FAULT_PRODUCT {
        Effect::Fault
    } else {
        Effect::Offset(product)
    }
}

/// What the daemon keeps per track file, for evaluation, status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFileState {
    pub name: String,
    pub path: PathBuf,
    pub weight: i32,
    /// The number in force (0 for a missing file).
    pub value: i64,
    /// Why the value is not simply the file's number ("missing: counts as 0", "... ignored").
    pub note: Option<String>,
    /// Changes of `value` since start.
    pub changes: u64,
}

impl TrackFileState {
    /// One state per file, read now (so an instance starts with the priority its files give it).
    pub fn for_files(files: &[TrackFileConfig]) -> Vec<TrackFileState> {
        files
            .iter()
            .map(|f| {
                let mut state = TrackFileState {
                    name: f.name.clone(),
                    path: f.path.clone(),
                    weight: f.weight,
                    value: 0,
                    note: None,
                    changes: 0,
                };
                state.apply(&read(&f.path));
                state.changes = 0;
                state
            })
            .collect()
    }

    /// Takes a reading; returns whether the value changed.
    pub fn apply(&mut self, reading: &Reading) -> bool {
        let (value, note) = match reading {
            Reading::Number(n) => (*n, None),
            Reading::Missing => (0, Some("missing: counts as 0".to_string())),
            Reading::OutOfRange(text) => (
                self.value,
                Some(format!(
                    "\"{text}\" does not fit 32 bits: ignored, {} kept",
                    self.value
                )),
            ),
        };
        self.note = note;
        let changed = value != self.value;
        if changed {
            self.value = value;
            self.changes += 1;
        }
        changed
    }

    pub fn effect(&self) -> Effect {
        effect(self.weight, self.value)
    }

    /// "drain: 200 x weight -1 = -200", "drain: 1 with weight 0: FAULT".
    pub fn describe(&self) -> String {
        match (self.weight, self.effect()) {
            (0, Effect::Fault) => format!(
                "track file {}: {} with weight 0: FAULT",
                self.name, self.value
            ),
            (_, Effect::Fault) => format!(
                "track file {}: {} x weight {} reaches -254: FAULT",
                self.name, self.value, self.weight
            ),
            (_, Effect::Offset(o)) => format!(
                "track file {}: {} x weight {} = {o:+}",
                self.name, self.value, self.weight
            ),
        }
    }
}

/// The instance's fault and priority from its track files, after the checks: `configured` is the
/// `priority` key, `checked` the priority the checks' weights give before clamping. An address owner
/// (255) keeps 255 (its files have weight 0, so they can only put it in FAULT).
pub fn evaluate(configured: u8, checked: i64, files: &[TrackFileState]) -> (Option<String>, u8) {
    let mut offset = 0;
    let mut faults = Vec::new();
    for f in files {
        match f.effect() {
            Effect::Fault => faults.push(f.describe()),
            Effect::Offset(o) => offset += o,
        }
    }
    if configured == 255 {
        return ((!faults.is_empty()).then(|| faults.join("; ")), 255);
    }
    let total = checked + offset;
    if faults.is_empty() && offset != 0 && total <= 0 {
        let parts: Vec<String> = files
            .iter()
            .filter(|f| f.effect() != Effect::Offset(0))
            .map(|f| f.describe())
            .collect();
        faults.push(format!(
            "{} brings priority {checked} to {total}",
            parts.join(", ")
        ));
    }
    (
        (!faults.is_empty()).then(|| faults.join("; ")),
        total.clamp(1, i64::from(vrrp::TAKEOVER_PRIORITY)) as u8,
    )
}

/// One reading of one file, as the daemon loop receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFileReport {
    /// The instance's id.
    pub instance: usize,
    /// Index of the file within the instance.
    pub file: usize,
    pub reading: Reading,
}

/// The inotify descriptor as tokio's reactor wants it.
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Starts the watcher of an instance's track files (none without files): it reads every file once
/// its directory is watched, then again on each write, rename or removal there, and sends a
/// [`TrackFileReport`] whenever a reading differs from the one sent before. Dropping the set stops it.
pub fn spawn(
    instance: usize,
    instance_name: &str,
    files: &[TrackFileConfig],
    tx: mpsc::Sender<TrackFileReport>,
) -> TaskSet {
    if files.is_empty() {
        return TaskSet::default();
    }
    let files: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let name = instance_name.to_string();
    vec![tokio::spawn(async move {
        if let Err(err) = watch(instance, &name, &files, &tx).await {
            warn!(instance = %name, "track files are no longer watched: {err}");
        }
    })]
    .into()
}

async fn watch(
    instance: usize,
    name: &str,
    files: &[PathBuf],
    tx: &mpsc::Sender<TrackFileReport>,
) -> Result<(), String> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| format!("inotify_init1: {e}"))?;
    // SAFETY: `Fd` owns the inotify descriptor, and the AsyncFd owns `Fd`: the descriptor stays open
    // for as long as it is registered, and is deregistered before it is closed.
    let fd = unsafe { AsyncFd::register(Fd(inotify)) }
        .map_err(|e| format!("inotify fd: {}", e.into_parts().1))?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in files {
        let dir = f.parent().unwrap_or(Path::new("/")).to_path_buf();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let mask = AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF;
    let mut watched: HashMap<WatchDescriptor, PathBuf> = HashMap::new();
    let mut sent: Vec<Option<Reading>> = vec![None; files.len()];
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned: Vec<PathBuf> = Vec::new();
    loop {
        // Watch every directory not watched yet, then read what they hold.
        let mut fresh = Vec::new();
        for dir in &dirs {
            if watched.values().any(|d| d == dir) {
                continue;
            }
            match fd.get_ref().0.add_watch(dir.as_path(), mask) {
                Ok(wd) => {
                    watched.insert(wd, dir.clone());
                    warned.retain(|d| d != dir);
                    fresh.push(dir.clone());
                }
                Err(e) if !warned.contains(dir) => {
                    warn!(instance = %name, "cannot watch {} ({e}); its track files count as 0 until it exists", dir.display());
                    warned.push(dir.clone());
                }
                Err(_) => {}
            }
        }
        if sent.iter().any(Option::is_none) || !fresh.is_empty() {
            report(instance, name, files, files, &mut sent, tx).await?;
        }
        let waiting = watched.len() < dirs.len();
        tokio::select! {
            ready = fd.readable() => {
                let mut guard = ready.map_err(|e| format!("inotify: {e}"))?;
                let events = match guard.try_io(|inner| inner.get_ref().0.read_events().map_err(std::io::Error::from)) {
                    Ok(Ok(events)) => events,
                    Ok(Err(e)) => return Err(format!("inotify read: {e}")),
                    Err(_would_block) => continue,
                };
                // The files to read again: the one an event names, or all of a directory that went.
                let mut touched: Vec<PathBuf> = Vec::new();
                for ev in events {
                    let Some(dir) = watched.get(&ev.wd).cloned() else { continue };
                    let gone = AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF;
                    if ev.mask.intersects(gone) {
                        // The directory went away: its files count as missing until it is back.
                        if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                            watched.remove(&ev.wd);
                        } else {
                            let _ = fd.get_ref().0.rm_watch(ev.wd);
                        }
                    }
                    let named = ev.name.as_ref().map(|n| dir.join(n));
                    for f in files.iter().filter(|f| f.parent() == Some(dir.as_path())) {
                        let hit = ev.mask.intersects(gone) || named.as_ref() == Some(f);
                        if hit && !touched.contains(f) {
                            touched.push(f.clone());
                        }
                    }
                }
                report(instance, name, files, &touched, &mut sent, tx).await?;
            }
            _ = retry.tick(), if waiting => {}
        }
    }
}

/// Reads the files of `files` that are in `which` and sends each reading that differs from the last
/// one sent.
async fn report(
    instance: usize,
    name: &str,
    files: &[PathBuf],
    which: &[PathBuf],
    sent: &mut [Option<Reading>],
    tx: &mpsc::Sender<TrackFileReport>,
) -> Result<(), String> {
    for (index, path) in files.iter().enumerate() {
        if !which.contains(path) {
            continue;
        }
        let reading = read(path);
        if sent[index].as_ref() == Some(&reading) {
            continue;
        }
        info!(instance = %name, "track file {}: {reading:?}", path.display());
        sent[index] = Some(reading.clone());
        let r = TrackFileReport {
            instance,
            file: index,
            reading,
        };
        if tx.send(r).await.is_err() {
            return Err("the daemon loop has gone".to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_as_strtol_base_0() {
        assert_eq!(parse_number(b"200\n"), Some(200));
        assert_eq!(parse_number(b"  -15 apples"), Some(-15));
        assert_eq!(parse_number(b"+7"), Some(7));
        assert_eq!(parse_number(b"0x10"), Some(16));
        assert_eq!(parse_number(b"0X1f"), Some(31));
        assert_eq!(parse_number(b"010"), Some(8));
        assert_eq!(parse_number(b"09"), Some(0), "octal stops at 9");
        assert_eq!(parse_number(b"0x"), Some(0), "a bare 0x is the 0");
        assert_eq!(parse_number(b""), Some(0));
        assert_eq!(parse_number(b"drain"), Some(0));
        assert_eq!(parse_number(b"- 5"), Some(0));
    }

    #[test]
    fn numbers_outside_32_bits_are_ignored_as_keepalived_does() {
        assert_eq!(parse_number(b"2147483648"), Some(2_147_483_648));
        assert_eq!(parse_number(b"2147483649"), None);
        assert_eq!(parse_number(b"-2147483648"), Some(-2_147_483_648));
        assert_eq!(parse_number(b"-2147483649"), None);
        assert_eq!(parse_number(b"99999999999999999999999"), None);
    }

    #[test]
    fn a_file_is_read_missing_or_ignored() {
        let dir = std::env::temp_dir().join(format!("floatip-track-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("drain");
        assert_eq!(read(&path), Reading::Missing);
        std::fs::write(&path, "42\n").unwrap();
        assert_eq!(read(&path), Reading::Number(42));
        std::fs::write(&path, "").unwrap();
        assert_eq!(read(&path), Reading::Number(0));
        std::fs::write(&path, "4294967296").unwrap();
        assert!(matches!(read(&path), Reading::OutOfRange(_)));
        // Only the first 127 bytes count: digits past them are not read.
        std::fs::write(&path, format!("{}9", " ".repeat(127))).unwrap();
        assert_eq!(read(&path), Reading::Number(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_file_weight_arithmetic() {
        assert_eq!(effect(1, 0), Effect::Offset(0));
        assert_eq!(effect(1, 10), Effect::Offset(10));
        assert_eq!(effect(-10, 3), Effect::Offset(-30));
        assert_eq!(effect(1, 1000), Effect::Offset(253), "kept at 253");
        assert_eq!(effect(1, -253), Effect::Offset(-253));
        assert_eq!(effect(1, -254), Effect::Fault);
        assert_eq!(effect(2, -1_000_000), Effect::Fault);
        assert_eq!(effect(254, i64::from(i32::MAX) + 1), Effect::Offset(253));
        assert_eq!(effect(0, 0), Effect::Offset(0));
        assert_eq!(effect(0, 5), Effect::Fault);
        assert_eq!(effect(0, -1), Effect::Fault);
    }

    fn state(weight: i32, value: i64) -> TrackFileState {
        TrackFileState {
            name: "drain".into(),
            path: "/run/floatip/drain".into(),
            weight,
            value,
            note: None,
            changes: 0,
        }
    }

    #[test]
    fn an_instance_adds_every_file_and_clamps() {
        assert_eq!(evaluate(150, 150, &[]), (None, 150));
        assert_eq!(evaluate(150, 150, &[state(1, -100)]), (None, 50));
        assert_eq!(
            evaluate(150, 150, &[state(1, -100), state(-1, -20)]),
            (None, 70)
        );
        assert_eq!(evaluate(150, 150, &[state(1, 200)]), (None, 254));
        // The checks' weights come first: 150 - 60 = 90, then the file.
        assert_eq!(evaluate(150, 90, &[state(1, -50)]), (None, 40));
    }

    #[test]
    fn a_priority_brought_to_zero_or_below_is_fault() {
        let (fault, _) = evaluate(150, 150, &[state(1, -150)]);
        assert_eq!(
            fault.as_deref(),
            Some("track file drain: -150 x weight 1 = -150 brings priority 150 to 0")
        );
        let (fault, priority) = evaluate(150, 150, &[state(1, -149)]);
        assert_eq!((fault, priority), (None, 1));
        let (fault, _) = evaluate(100, 100, &[state(1, -254)]);
        assert_eq!(
            fault.as_deref(),
            Some("track file drain: -254 x weight 1 reaches -254: FAULT")
        );
        let (fault, _) = evaluate(100, 100, &[state(0, 3)]);
        assert_eq!(
            fault.as_deref(),
            Some("track file drain: 3 with weight 0: FAULT")
        );
        // The checks alone never make a FAULT of a low priority (they clamp at 1, as before).
        assert_eq!(evaluate(100, -20, &[state(1, 0)]), (None, 1));
    }

    #[test]
    fn an_address_owner_keeps_255_and_faults_on_weight_0() {
        assert_eq!(evaluate(255, 255, &[state(0, 0)]), (None, 255));
        assert!(evaluate(255, 255, &[state(0, 1)]).0.is_some());
    }

    /// The next report, waiting at most 10 s (a missing report fails the test; its speed is not tested).
    async fn next(rx: &mut mpsc::Receiver<TrackFileReport>) -> TrackFileReport {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a report within 10 s")
            .expect("the watcher is running")
    }

    #[tokio::test]
    async fn the_watcher_sees_writes_renames_removals_and_a_late_directory() {
        let root = std::env::temp_dir().join(format!("floatip-track-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let drain = root.join("drain");
        let late = root.join("later").join("maint");
        let cfg = |path: &Path| TrackFileConfig {
            name: "x".into(),
            path: path.to_path_buf(),
            weight: 1,
        };
        let (tx, mut rx) = mpsc::channel(16);
        let _tasks = spawn(7, "files", &[cfg(&drain), cfg(&late)], tx);
        let first = next(&mut rx).await;
        assert_eq!(
            (first.instance, first.file, first.reading),
            (7, 0, Reading::Missing)
        );
        let second = next(&mut rx).await;
        assert_eq!((second.file, second.reading), (1, Reading::Missing));

        std::fs::write(&drain, "5\n").unwrap();
        assert_eq!(next(&mut rx).await.reading, Reading::Number(5));
        // An editor's save: a new file renamed over the old one.
        std::fs::write(root.join(".drain.swp"), "7").unwrap();
        std::fs::rename(root.join(".drain.swp"), &drain).unwrap();
        assert_eq!(next(&mut rx).await.reading, Reading::Number(7));
        std::fs::remove_file(&drain).unwrap();
        assert_eq!(next(&mut rx).await.reading, Reading::Missing);

        // A directory that did not exist at start is watched once it does.
        std::fs::create_dir_all(late.parent().unwrap()).unwrap();
        std::fs::write(&late, "-3").unwrap();
        let r = loop {
            let r = next(&mut rx).await;
            if r.reading != Reading::Missing {
                break r;
            }
        };
        assert_eq!((r.file, r.reading), (1, Reading::Number(-3)));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_reading_updates_the_state() {
        let mut s = state(1, 0);
        assert!(s.apply(&Reading::Number(5)));
        assert_eq!((s.value, s.changes), (5, 1));
        assert!(!s.apply(&Reading::OutOfRange("9999999999".into())));
        assert_eq!(s.value, 5);
        assert!(s.note.as_deref().unwrap().contains("ignored, 5 kept"));
        assert!(s.apply(&Reading::Missing));
        assert_eq!(
            (s.value, s.note.as_deref()),
            (0, Some("missing: counts as 0"))
        );
    }
}
