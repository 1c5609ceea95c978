//! A stranger on our VRID, through the real binary in network namespaces: another virtual router
//! (another cluster, a copied config) speaking VRRP on our VRID 51 for another address, at a higher
//! priority. Our master must keep serving, never yield to it, never take its address, and say who
//! it is (log once, `status`).
//!
//! Needs root; without it the test prints SKIPPED and passes, unless CI=true.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The stranger's own service address.
const STRANGER_VIP: &str = "192.0.2.50";

#[test]
fn a_stranger_on_our_vrid_is_reported_not_followed() {
    if !require_root("a_stranger_on_our_vrid_is_reported_not_followed") {
        return;
    }
    let (lab, h1, h2) = two_hosts("clash");
    let d1 = Node::spawn(&lab, &h1, &[Instance::v4(150)]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    // The stranger: VRID 51 too, priority 254, for another address.
    let d2 = Node::spawn(
        &lab,
        &h2,
        &[Instance::named(
            "other",
            51,
            254,
            &format!("{STRANGER_VIP}/24"),
        )],
    );
    wait_sole_owner(&[&h1, &h2], &h2, STRANGER_VIP, SETTLE);

    // Five seconds (50 of the stranger's adverts): every sample has h1 alone on our VIP and h2
    // alone on its own.
    let end = Instant::now() + Duration::from_secs(5);
    let mut samples = 0u32;
    loop {
        samples += 1;
        assert_eq!(
            holders(&[&h1, &h2], VIP4),
            vec!["h1".to_string()],
            "sample {samples}: h1 must keep {VIP4} while the stranger talks; h1 log:\n{}",
            d1.log()
        );
        assert_eq!(
            holders(&[&h1, &h2], STRANGER_VIP),
            vec!["h2".to_string()],
            "sample {samples}: nobody but the stranger holds its {STRANGER_VIP}"
        );
        if Instant::now() >= end {
            break;
        }
        std::thread::sleep(SAMPLE);
    }

    let st = d1.status("files");
    assert_eq!(st["state"], "MASTER", "{st:#}");
    let clashes = st["clashes"].as_array().expect("clashes is an array");
    assert_eq!(clashes.len(), 1, "{st:#}");
    assert_eq!(clashes[0]["address"], "192.0.2.2", "{st:#}");
    assert_eq!(clashes[0]["addresses"], serde_json::json!([STRANGER_VIP]));
    assert_eq!(clashes[0]["priority"], 254);
    // Who it is: its MAC, learnt from its answer to our probe for its address.
    assert_eq!(clashes[0]["mac"], h2.mac_string().as_str(), "{st:#}");
    assert!(
        st["counters"]["drops"]["address_set"].as_u64().unwrap_or(0) >= 10,
        "its adverts are counted as address_set drops: {st:#}"
    );
    assert!(st["speakers"].as_array().unwrap().is_empty(), "{st:#}");
    assert!(
        !d1.log().contains("MASTER -> BACKUP"),
        "h1 never yielded: {}",
        d1.log()
    );
    // Logged once for this speaker, with who, what and what to do.
    let log = d1.log();
    assert_eq!(log.matches("VRID clash").count(), 1, "{log}");
    assert!(
        log.contains("192.0.2.2 speaks VRRP on our VRID 51 (priority 254) for 192.0.2.50"),
        "{log}"
    );
    assert!(log.contains("Pick another VRID"), "{log}");
    let human = d1.ctl_ok(&["status", "files"]);
    assert!(
        human.contains("CLASH:     192.0.2.2 (02:00:00:00:00:02) speaks on VRID 51"),
        "{human}"
    );
    assert!(d1.proc.is_running() && d2.proc.is_running());
}
