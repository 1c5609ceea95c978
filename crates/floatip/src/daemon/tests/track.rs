//! Track files over the fake host: the number read at start, a changed number moving the advertised
//! priority (and so the election), and a number past the priority putting the instance in FAULT.

use super::*;
use crate::health::track_file::{Reading, TrackFileReport};

/// A directory for track files, removed at the end.
struct Files(PathBuf);

impl Files {
    fn new(name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("floatip-track-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Files(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn with_track_file(priority: u8, path: &std::path::Path, weight: i32) -> String {
    format!(
        "{}[[instance.track_file]]\npath = \"{}\"\nweight = {weight}\n",
        instance(51, priority),
        path.display()
    )
}

/// What the watcher would send: `file` of the instance now reads `reading`.
fn report(h: &mut Harness, reading: Reading) {
    let _rt = h.runtime.enter();
    let id = h.daemon.instances[0].id;
    h.daemon.on_track_file(
        h.now,
        TrackFileReport {
            instance: id,
            file: 0,
            reading,
        },
    );
    h.daemon.carry_out(h.now);
}

fn adverts_at(log: &[Call], priority: u8) -> bool {
    log.contains(&Call::Advert {
        dst: IpAddr::V4(GROUP_V4),
        priority,
    })
}

#[test]
fn the_number_in_the_file_at_start_sets_the_priority() {
    let files = Files::new("start");
    std::fs::write(files.path("drain"), "30\n").unwrap();
    let mut h = Harness::start(&with_track_file(150, &files.path("drain"), -2));
    h.become_master();
    assert!(adverts_at(&h.host.take_log(), 90), "150 + 30 x -2");
    let st = h.status();
    assert_eq!((st.priority.configured, st.priority.effective), (150, 90));
    assert_eq!(
        st.priority.why_different.as_deref(),
        Some("track file drain: 30 x weight -2 = -60")
    );
    let tf = &st.track_files[0];
    assert_eq!(
        (tf.value, tf.weight, tf.offset, tf.fault),
        (30, -2, Some(-60), false)
    );
}

#[test]
fn a_written_number_hands_over_to_a_better_peer_and_zero_brings_it_back() {
    let files = Files::new("drain");
    let mut h = Harness::start(&with_track_file(150, &files.path("drain"), 1));
    h.become_master();
    h.advert_from_peer(51, 100);
    assert_eq!(h.state(), State::Master, "150 beats the peer's 100");
    h.host.take_log();

    report(&mut h, Reading::Number(-100));
    h.advance(Duration::from_millis(150));
    assert!(adverts_at(&h.host.take_log(), 50), "advertising 150 - 100");
    h.advert_from_peer(51, 100);
    assert_eq!(h.state(), State::Backup, "the peer's 100 beats our 50");
    assert!(!h.host.has(IFINDEX, vip()));

    report(&mut h, Reading::Missing);
    assert_eq!(h.status().priority.effective, 150, "a missing file is 0");
    assert_eq!(
        h.status().track_files[0].note.as_deref(),
        Some("missing: counts as 0")
    );
    h.advert_from_peer(51, 100);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Master, "preempts the peer again");
}

#[test]
fn a_number_past_the_priority_is_fault_and_ends_with_it() {
    let files = Files::new("fault");
    let mut h = Harness::start(&with_track_file(150, &files.path("drain"), 1));
    h.become_master();
    report(&mut h, Reading::Number(-200));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Fault);
    assert!(!h.host.has(IFINDEX, vip()));
    let st = h.status();
    assert!(
        st.reason
            .as_deref()
            .unwrap_or_default()
            .contains("track file drain: -200 x weight 1 = -200 brings priority 150 to -50"),
        "{:?}",
        st.reason
    );
    assert_eq!(st.track_files[0].offset, Some(-200));

    report(&mut h, Reading::Number(0));
    assert_ne!(h.state(), State::Fault, "FAULT ends with its cause");
    h.become_master();
}

#[test]
fn weight_zero_makes_any_non_zero_number_fault() {
    let files = Files::new("zero");
    let mut h = Harness::start(&with_track_file(150, &files.path("maint"), 0));
    h.become_master();
    report(&mut h, Reading::Number(1));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Fault);
    let st = h.status();
    assert_eq!(
        (st.track_files[0].offset, st.track_files[0].fault),
        (None, true)
    );
    report(&mut h, Reading::OutOfRange("99999999999".into()));
    assert_eq!(
        h.state(),
        State::Fault,
        "an ignored number keeps the value before it"
    );
    report(&mut h, Reading::Number(0));
    h.become_master();
}
