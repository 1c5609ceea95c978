//! The master's own address vanishes for a while (`ip addr flush dev eth0`, a DHCP or networkd
//! hiccup): never two owners, the VIP comes back only after the host's own address (which stays the
//! interface's primary address), and no safety rule outlives its cause (the priority-150 host takes
//! the VIP back). And an override that cannot be saved is said in the daemon's log.

mod common;

use std::time::Duration;

use common::*;

/// Whether `addr` is on h's eth0 as a primary (not `secondary`) IPv4 address.
fn is_primary(h: &Host, addr: &str) -> bool {
    let out = h
        .ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap_or_default();
    out.lines()
        .any(|l| l.contains(&format!(" {addr}/")) && !l.contains("secondary"))
}

fn flush_for(name: &str, flushed: Duration) {
    if !require_root(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts(name);
    let n1 = Node::start(&lab, &h1, &[Instance::v4(150).interval("1s")]);
    let n2 = Node::start(&lab, &h2, &[Instance::v4(100).interval("1s")]);
    let hosts = [&h1, &h2];
    wait_sole_owner(&hosts, &h1, VIP4, SETTLE);
    let w1 = AddrWatch::start(&h1, VIP4).expect("watch h1");
    let w2 = AddrWatch::start(&h2, VIP4).expect("watch h2");
    h1.ip(&["addr", "flush", "dev", "eth0"]).expect("flush");
    std::thread::sleep(flushed);
    h1.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"])
        .expect("the host address back");
    // h1 (priority 150, preempt) holds the VIP again, alone, as MASTER: no FAULT left behind.
    wait_sole_owner(&hosts, &h1, VIP4, SETTLE);
    let st = n1.wait_state("files", "MASTER");
    assert!(st["claim_inhibit"].is_null(), "{st:#}");
    assert!(
        is_primary(&h1, "192.0.2.1") && !is_primary(&h1, VIP4),
        "the host address is the primary address, the VIP secondary:\n{}",
        h1.ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
            .unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(300));
    let (t1, t2) = (w1.stop(), w2.stop());
    let own = ownership(&[t1.clone(), t2.clone()], t1.since, unix_now(), false);
    assert!(
        own.shared.is_empty(),
        "two owners during {:?}\n{t1:?}\n{t2:?}\nh1 log:\n{}\nh2 log:\n{}",
        own.shared,
        n1.log(),
        n2.log()
    );
}

#[test]
fn a_short_flush_on_the_master_keeps_the_host_address_primary() {
    flush_for("msyflush2", Duration::from_secs(2));
}

#[test]
fn a_long_flush_on_the_master_never_makes_two_owners_and_ends_with_it_master() {
    flush_for("msyflush8", Duration::from_secs(8));
}

#[test]
fn an_override_that_cannot_be_saved_is_said_in_the_daemon_log() {
    if !require_root("an_override_that_cannot_be_saved_is_said_in_the_daemon_log") {
        return;
    }
    let (lab, h1, h2) = two_hosts("msysave");
    let n1 = Node::start(&lab, &h1, &[Instance::v4(150)]);
    let _n2 = Node::start(&lab, &h2, &[Instance::v4(100)]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    // The state directory turns into a file: nothing can be written below it.
    let _ = std::fs::remove_dir_all(&n1.state_dir);
    std::fs::write(&n1.state_dir, b"not a directory").unwrap();
    let out = n1.ctl_ok(&["release", "files", "--force"]);
    assert!(out.contains("could not be saved"), "{out}");
    assert!(
        n1.wait_log("could not be saved", SETTLE),
        "the daemon's log says it too:\n{}",
        n1.log()
    );
}
