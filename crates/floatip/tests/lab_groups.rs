//! Sync groups through the real binary (`[[group]]`, issue 13 finding 3): a dual-stack service, an
//! IPv4 and an IPv6 instance in one group, two hosts, IPv6 VRRP (protocol 112 over IPv6) dropped on
//! h2 by nftables. The two VIPs stay on one host after start-up, and `floatip takeover fileserver`
//! on the backup moves both. Without groups h2's IPv6 instance hears no master, claims, and the
//! service ends up split across the hosts.

mod common;

use std::time::{Duration, Instant};

use common::*;

const GROUP: &str =
    "\n[[group]]\nname = \"fileserver\"\ninstances = [\"files-v4\", \"files-v6\"]\n";

/// h2 drops VRRP over IPv6 both ways; IPv4 VRRP, ARP, NDP and the rest still flow.
const DROP_V6_VRRP: &str = "table inet fipgroups {
  chain in { type filter hook input priority 0; meta nfproto ipv6 meta l4proto 112 drop; }
  chain out { type filter hook output priority 0; meta nfproto ipv6 meta l4proto 112 drop; }
}
";

/// The group's two instances at `priority`, the `[[group]]` after them.
fn fileserver(priority: u8) -> Vec<Instance> {
    vec![
        Instance::named("files-v4", 51, priority, &format!("{VIP4}/24")),
        Instance::named("files-v6", 52, priority, &format!("{VIP6}/64")).extra(GROUP),
    ]
}

/// Samples both VIPs' holders for `duration`: every sample must show `owner` alone holding both.
fn assert_group_on(hosts: &[&Host], owner: &Host, duration: Duration) {
    let end = Instant::now() + duration;
    let mut samples = 0u32;
    loop {
        let v4 = holders(hosts, VIP4);
        let v6 = holders(hosts, VIP6);
        samples += 1;
        assert!(
            v4 == [owner.name.clone()] && v6 == [owner.name.clone()],
            "sample {samples}: the group should be on {} alone; {VIP4} on {v4:?}, {VIP6} on {v6:?}",
            owner.name
        );
        if Instant::now() >= end {
            break;
        }
        std::thread::sleep(SAMPLE);
    }
}

#[test]
fn a_group_stays_on_one_host_with_ipv6_vrrp_filtered_and_moves_whole() {
    if !require_root("lab_groups") || !require_nft("lab_groups") {
        return;
    }
    let (lab, hosts) = lab_with_hosts("fipgroups", 2, true);
    let (h1, h2) = (&hosts[0], &hosts[1]);
    let rules = write_file(&lab, "drop-v6-vrrp.nft", DROP_V6_VRRP);
    h2.run(&["nft", "-f", path_str(&rules)])
        .expect("nft rules in h2");

    let n1 = Node::start(&lab, h1, &fileserver(150));
    wait_holders(
        &[h1, h2],
        Some(h1),
        VIP4,
        SETTLE,
        "h1 alone claims files-v4",
    );
    wait_holders(
        &[h1, h2],
        Some(h1),
        VIP6,
        SETTLE,
        "h1 alone claims files-v6",
    );
    let n2 = Node::start(&lab, h2, &fileserver(100));
    n2.wait_state("files-v4", "BACKUP");
    // h2's files-v6 hears no adverts at all; many master-down intervals (0.36 s) pass meanwhile.
    assert_group_on(&[h1, h2], h1, Duration::from_secs(4));
    let st = n2.status("files-v6");
    let why = st["claim_inhibit"].as_str().unwrap_or_default();
    assert!(
        why.contains("no IPv6 adverts heard, but files-v4 hears master 192.0.2.1"),
        "h2's files-v6 says why it does not claim: {st}"
    );
    let text = n2.ctl_ok(&["status"]);
    assert!(
        text.contains("group fileserver: files-v4 BACKUP, files-v6 BACKUP"),
        "{text}"
    );

    // A planned move of the whole group from the backup.
    let out = n2.ctl_ok(&["takeover", "fileserver"]);
    assert!(
        out.contains("files-v4") && out.contains("files-v6"),
        "{out}"
    );
    wait_holders(&[h1, h2], Some(h2), VIP4, SETTLE, "takeover moves files-v4");
    wait_holders(&[h1, h2], Some(h2), VIP6, SETTLE, "takeover moves files-v6");
    assert_group_on(&[h1, h2], h2, Duration::from_secs(3));
    let text = n1.ctl_ok(&["status", "fileserver"]);
    assert!(
        text.contains("group fileserver: files-v4 BACKUP, files-v6 BACKUP"),
        "h1 follows as a whole: {text}"
    );
}
