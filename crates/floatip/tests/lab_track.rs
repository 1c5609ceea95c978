//! Track files through the real binary, with Debian's keepalived as the real peer, in network
//! namespaces: a number written into floatip's track file on the master hands the VIP to keepalived
//! (and 0 brings it back, preempting); a negative number past the priority puts floatip in FAULT; and
//! keepalived's own `track_file` moves the VIP to floatip and back.
//!
//! Needs root and /usr/sbin/keepalived (`.ci/run` installs it); without them every test prints
//! SKIPPED and passes, unless CI=true.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use floatip_lab::spawn_keepalived;

/// floatip's instance with one track file: VRRPv3, 100 ms adverts, as keepalived's `advert_int 0.1`.
fn floatip_with_track_file(priority: u8, file: &Path, weight: i32) -> Instance {
    Instance::v4(priority).extra(&format!(
        "\n[[instance.track_file]]\nname = \"drain\"\npath = \"{}\"\nweight = {weight}\n",
        file.display()
    ))
}

#[test]
fn track_file_number_hands_the_vip_to_keepalived_and_zero_brings_it_back() {
    let name = "track_file_number_hands_the_vip_to_keepalived_and_zero_brings_it_back";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts("track_drain");
    let both = [&h1, &h2];
    let drain = lab.path("h1-drain");
    let f = Node::start(&lab, &h1, &[floatip_with_track_file(150, &drain, -1)]);
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let k = start_keepalived_backup(&lab, &h2, &KaInstance::v4(100, 3, "0.1"));
    assert_sole_owner_for(&both, &h1, VIP4, Duration::from_millis(800), SAMPLE);

    // The file did not exist: 0. Now 100 x -1: 150 - 100 = 50 < keepalived's 100.
    write_path(&drain, "100\n");
    wait_sole_owner(&both, &h2, VIP4, SETTLE);
    assert!(k.log().contains("Entering MASTER STATE"), "{}", k.log());
    let st = f.wait_state("files", "BACKUP");
    assert_eq!(st["priority"]["effective"], 50, "{st:#}");
    assert_eq!(st["track_files"][0]["value"], 100, "{st:#}");
    assert_eq!(st["track_files"][0]["offset"], -100, "{st:#}");
    assert_eq!(
        st["priority"]["why_different"], "track file drain: 100 x weight -1 = -100",
        "{st:#}"
    );

    // 0 gives the priority back; floatip preempts keepalived.
    write_path(&drain, "0");
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let st = f.wait_state("files", "MASTER");
    assert_eq!(st["priority"]["effective"], 150, "{st:#}");
    assert!(
        wait_until(SETTLE, STEP, || k
            .log()
            .matches("Entering BACKUP STATE")
            .count()
            >= 2),
        "keepalived did not step back: {}",
        k.log()
    );
    assert_sole_owner_for(&both, &h1, VIP4, Duration::from_millis(800), SAMPLE);
}

#[test]
fn track_file_negative_past_the_priority_is_fault_until_it_is_gone() {
    let name = "track_file_negative_past_the_priority_is_fault_until_it_is_gone";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts("track_fault");
    let both = [&h1, &h2];
    let drain = lab.path("h1-drain");
    write_path(&drain, "0\n");
    let f = Node::start(&lab, &h1, &[floatip_with_track_file(150, &drain, 1)]);
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let _k = start_keepalived_backup(&lab, &h2, &KaInstance::v4(100, 3, "0.1"));

    // An editor's save: a new file renamed over the old one.
    let tmp = lab.path(".h1-drain.tmp");
    write_path(&tmp, "-200\n");
    std::fs::rename(&tmp, &drain).expect("rename over the track file");
    let st = f.wait_state("files", "FAULT");
    let reason = st["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("track file drain: -200 x weight 1 = -200 brings priority 150 to -50"),
        "{st:#}"
    );
    wait_sole_owner(&both, &h2, VIP4, SETTLE);

    // Removing the file is 0: FAULT ends, and floatip preempts keepalived again.
    std::fs::remove_file(&drain).expect("remove the track file");
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let st = f.wait_state("files", "MASTER");
    assert_eq!(
        st["track_files"][0]["note"], "missing: counts as 0",
        "{st:#}"
    );
}

#[test]
fn track_file_of_keepalived_moves_the_vip_to_floatip_and_back() {
    let name = "track_file_of_keepalived_moves_the_vip_to_floatip_and_back";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts("track_ka");
    let both = [&h1, &h2];
    let ka_drain = lab.path("ka-drain");
    write_path(&ka_drain, "0\n");
    // keepalived (150) with its own track file, weight -1; floatip (100).
    let mut text = keepalived_config("h1", &KaInstance::v4(150, 3, "0.1"));
    text = format!(
        "track_file ka_drain {{\n  file \"{}\"\n  weight -1\n}}\n\n{}",
        ka_drain.display(),
        text.replace(
            "  virtual_ipaddress {",
            "  track_file {\n    ka_drain\n  }\n  virtual_ipaddress {"
        )
    );
    let conf = write_file(&lab, "keepalived-h1.conf", &text);
    let log = lab.path("keepalived-h1.log");
    let proc = spawn_keepalived(&h1, &conf, lab.dir(), &log).expect("cannot start keepalived");
    let k = Keepalived {
        host: h1.clone(),
        proc,
        conf,
    };
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let f = Node::start(&lab, &h2, &[Instance::v4(100)]);
    f.wait_state("files", "BACKUP");
    assert_sole_owner_for(&both, &h1, VIP4, Duration::from_millis(800), SAMPLE);

    // keepalived: 150 - 100 = 50 < floatip's 100: floatip preempts.
    write_path(&ka_drain, "100\n");
    wait_sole_owner(&both, &h2, VIP4, SETTLE);
    let st = f.wait_state("files", "MASTER");
    assert!(
        st["reason"].as_str().unwrap_or_default().contains("MASTER"),
        "{st:#}"
    );
    assert!(
        f.status("files")["speakers"][0]["priority"] == 50
            || wait_until(SETTLE, POLL, || f.status("files")["speakers"][0]
                ["priority"]
                == 50),
        "keepalived advertises 50: {:#}\nkeepalived: {}",
        f.status("files"),
        k.log()
    );

    write_path(&ka_drain, "0\n");
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    f.wait_state("files", "BACKUP");
}
