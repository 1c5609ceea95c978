//! Boot order, through the real binary in network namespaces: a daemon whose configured interface
//! does not exist yet (a VLAN or bridge created late at boot) keeps running, shows that instance in
//! FAULT with the reason, and serves as soon as the interface and its address appear; the interface
//! deleted and created again (a new index) is picked up again, VIP and sockets included.
//!
//! Needs root; without it the test prints SKIPPED and passes, unless CI=true.

mod common;

use common::*;
use serde_json::Value;

/// The late interface's own address and the VIP on it (a /28 of their own inside 192.0.2.0/24).
const LATE_OWN: &str = "192.0.2.209/28";
const LATE_VIP: &str = "192.0.2.210";

fn reason(s: &Value) -> String {
    s["reason"].as_str().unwrap_or_default().to_string()
}

/// The index of `eth1` in `host`, from `ip -o link show eth1` ("7: eth1: <...").
fn eth1_index(host: &Host) -> String {
    let out = host
        .ip(&["-o", "link", "show", "eth1"])
        .expect("eth1 exists");
    out.split(':').next().unwrap_or_default().trim().to_string()
}

fn vip_on_eth1(host: &Host) -> bool {
    host.ip(&["-4", "-o", "addr", "show", "dev", "eth1"])
        .map(|out| out.contains(&format!("{LATE_VIP}/28")))
        .unwrap_or(false)
}

/// eth1 (a veth pair inside the host, as a bridge or VLAN would be created late) created, up, with
/// the host's address. Deleting eth1 deletes its peer too.
fn create_eth1(host: &Host, with_address: bool) {
    host.ip(&[
        "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
    ])
    .unwrap();
    host.ip(&["link", "set", "eth1p", "up"]).unwrap();
    host.ip(&["link", "set", "eth1", "up"]).unwrap();
    if with_address {
        host.ip(&["addr", "add", LATE_OWN, "dev", "eth1"]).unwrap();
    }
}

#[test]
fn an_interface_created_late_or_again_is_waited_for_in_fault_and_then_served() {
    if !require_root("an_interface_created_late_or_again_is_waited_for_in_fault_and_then_served") {
        return;
    }
    let (lab, hosts) = lab_with_hosts("boot", 1, false);
    let h1 = &hosts[0];
    let late = Instance::named("late", 60, 150, &format!("{LATE_VIP}/28")).interface("eth1");
    let node = Node::start(&lab, h1, &[Instance::v4(150), late]);

    // eth1 does not exist: the daemon runs, the instance waits in FAULT and says why; the other
    // instance serves meanwhile.
    let s = node.wait_status("late", "FAULT for a missing eth1", |s| {
        s["state"] == "FAULT" && reason(s).contains("interface eth1 does not exist (yet)")
    });
    assert!(node.proc.is_running(), "the daemon exited: {}", node.log());
    node.wait_state("files", "MASTER");
    assert_eq!(s["vips"][0]["present_in_kernel"], false, "{s:#}");

    // eth1 appears without an address: FAULT, now for the address.
    create_eth1(h1, false);
    node.wait_status("late", "FAULT for eth1 without an address", |s| {
        s["state"] == "FAULT" && reason(s).contains("eth1 has no IPv4 address to send adverts from")
    });
    // Its address: into the election and, nobody else speaking, MASTER with the VIP on eth1.
    h1.ip(&["addr", "add", LATE_OWN, "dev", "eth1"]).unwrap();
    node.wait_state("late", "MASTER");
    assert!(
        wait_until(SETTLE, STEP, || vip_on_eth1(h1)),
        "{LATE_VIP} is not on eth1; log:\n{}",
        node.log()
    );
    let first_index = eth1_index(h1);

    // eth1 deleted: FAULT with that reason, the daemon keeps running.
    h1.ip(&["link", "del", "eth1"]).unwrap();
    node.wait_status("late", "FAULT for a deleted eth1", |s| {
        s["state"] == "FAULT" && reason(s).contains("interface eth1 was deleted")
    });
    assert!(node.proc.is_running(), "the daemon exited: {}", node.log());
    assert_eq!(node.status("files")["state"], "MASTER");

    // Created again (a new index) with its address: MASTER again, the VIP on the new eth1.
    create_eth1(h1, true);
    assert_ne!(
        eth1_index(h1),
        first_index,
        "the kernel gave eth1 a new index"
    );
    node.wait_state("late", "MASTER");
    assert!(
        wait_until(SETTLE, STEP, || vip_on_eth1(h1)),
        "{LATE_VIP} is not on the new eth1; log:\n{}",
        node.log()
    );
    // Its adverts go out through the new interface's sockets (no send errors counted since).
    let sent = |n: &Node| {
        n.status("late")["counters"]["adverts_sent"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = sent(&node);
    assert!(
        wait_until(SETTLE, POLL, || sent(&node) > before + 5),
        "no adverts sent on the new eth1; log:\n{}",
        node.log()
    );
    assert!(node.proc.is_running());
}
