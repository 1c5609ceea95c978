//! The guard through the real binary: a master's daemon killed (kill -9) or frozen (SIGSTOP) at
//! 100 ms adverts loses its VIP at once, not when the VIP's kernel lifetime runs out, so it and the
//! backup never hold the VIP together; a clean stop leaves no guard and removes nothing.
//!
//! Why the assertions discriminate (no timing is asserted): at 100 ms adverts a backup claims after
//! master-down, about 0.36 s, while the VIP is refreshed every half lifetime (0.5 s of the default
//! 1 s), so without a guard a dead or frozen master's VIP outlives master-down by 0.14 s or more and
//! the samples see two owners. Where a test needs "gone long before the lifetime could have done
//! it" with no backup, it sets `address_lifetime = "20s"` (refreshed every 10 s, so at least 10 s
//! left at any moment) and waits at most 5 s.
//!
//! Needs root; without it every test prints SKIPPED and passes, unless CI=true.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// How long a frozen daemon's VIP may take to go when nothing but the guard removes it (at 1 s adverts
/// the guard acts within about 2.3 s: the next advert plus half of master-down minus an interval):
/// well under the 10 s that the lifetime of `LONG_LIFE` leaves at least.
const FROZEN_BOUND: Duration = Duration::from_secs(5);
const LONG_LIFE: &str = "address_lifetime = \"20s\"\n";

/// The pids of the `floatip-guard` processes in `host`'s namespace.
fn guards(host: &Host) -> Vec<u32> {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", &host.netns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "floatip-guard")
        })
        .collect()
}

fn assert_one_guard(node: &Node) {
    let g = guards(&node.host);
    assert_eq!(
        g.len(),
        1,
        "{}: expected one floatip-guard process beside the daemon, found {g:?}; log:\n{}",
        node.host.name,
        node.log()
    );
}

fn assert_guard_exits(host: &Host) {
    let mut left = Vec::new();
    let gone = wait_until(SETTLE, STEP, || {
        left = guards(host);
        left.is_empty()
    });
    assert!(gone, "{}: the guard did not exit: {left:?}", host.name);
}

/// h1 (priority 150) master of the VIP at `interval` adverts with its guard running, h2 (100) its
/// backup.
fn master_and_backup(name: &str, interval: &str) -> (Lab, Host, Host, Node, Node) {
    let (lab, h1, h2) = two_hosts(name);
    let d1 = Node::spawn(&lab, &h1, &[Instance::v4(150).interval(interval)]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let d2 = Node::spawn(&lab, &h2, &[Instance::v4(100).interval(interval)]);
    d2.wait_up();
    d2.wait_state("files", "BACKUP");
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    assert_one_guard(&d1);
    (lab, h1, h2, d1, d2)
}

/// Samples h2 then h1 every ~5 ms until h2 has held the VIP for 40 samples (bounded by SETTLE).
/// h2 never gives the VIP up meanwhile, so "h2 holds, then h1 holds" proves both held it at once.
/// Returns (samples with both, sample at which h1 no longer held it, sample at which h2 claimed it).
fn watch_failover(h1: &Host, h2: &Host) -> (Vec<u32>, Option<u32>, Option<u32>) {
    let deadline = Instant::now() + SETTLE;
    let (mut n, mut both, mut h1_gone, mut h2_claimed) = (0u32, Vec::new(), None, None);
    while Instant::now() < deadline && h2_claimed.is_none_or(|c| n < c + 40) {
        let on2 = h2.has_address(VIP4);
        let on1 = h1.has_address(VIP4);
        n += 1;
        if on1 && on2 {
            both.push(n);
        }
        if !on1 && h1_gone.is_none() {
            h1_gone = Some(n);
        }
        if on2 && h2_claimed.is_none() {
            h2_claimed = Some(n);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (both, h1_gone, h2_claimed)
}

/// kill -9 of the master's daemon: its guard removes the VIP at once (the daemon's end of the pipe
/// closes), so the backup's claim never overlaps it; the guard says so and exits.
#[test]
fn kill9_master_guard_removes_the_vip_before_the_backup_claims() {
    if !require_root("kill9_master_guard_removes_the_vip_before_the_backup_claims") {
        return;
    }
    let (_lab, h1, h2, d1, d2) = master_and_backup("guardkill", "100ms");
    assert!(d1.kill(), "h1's daemon had already exited");
    let (both, h1_gone, h2_claimed) = watch_failover(&h1, &h2);
    assert!(
        both.is_empty(),
        "h1 and h2 both held {VIP4} in {} samples (first #{}); h1 log:\n{}",
        both.len(),
        both[0],
        d1.log()
    );
    assert!(h2_claimed.is_some(), "h2 never claimed; log:\n{}", d2.log());
    assert!(
        h1_gone.is_some() && h1_gone <= h2_claimed,
        "the VIP must leave h1 before h2 claims it"
    );
    // Usually the pipe's EOF tells the guard first ("the daemon exited holding its VIPs"); when the
    // killed process takes longer to tear down than its promise, the missed deadline does.
    let log = d1.log();
    assert!(
        log.contains("floatip guard: the daemon")
            && log.contains(&format!(
                "removed {VIP4}/24 from eth0 so that no two hosts hold it"
            )),
        "the guard must say what it removed and why; log:\n{log}"
    );
    assert_guard_exits(&h1);
}

/// SIGSTOP of the master's daemon: the guard sees its deadline pass and removes the VIP before the
/// backup claims; after SIGCONT the daemon carries on (it answers, and the guard is still there).
#[test]
fn sigstop_master_guard_removes_the_vip_before_the_backup_claims() {
    if !require_root("sigstop_master_guard_removes_the_vip_before_the_backup_claims") {
        return;
    }
    let (_lab, h1, h2, d1, d2) = master_and_backup("guardstop", "100ms");
    assert!(
        d1.proc.signal(libc::SIGSTOP),
        "h1's daemon had already exited"
    );
    let (both, h1_gone, h2_claimed) = watch_failover(&h1, &h2);
    assert!(d1.proc.signal(libc::SIGCONT));
    assert!(
        both.is_empty(),
        "h1 and h2 both held {VIP4} in {} samples (first #{}); h1 log:\n{}",
        both.len(),
        both[0],
        d1.log()
    );
    assert!(h2_claimed.is_some(), "h2 never claimed; log:\n{}", d2.log());
    assert!(
        h1_gone.is_some() && h1_gone <= h2_claimed,
        "the VIP must leave h1 before h2 claims it"
    );
    assert!(
        d1.log()
            .contains("floatip guard: the daemon has not advanced for"),
        "the guard must say why it removed the VIP; log:\n{}",
        d1.log()
    );
    d1.wait_up();
    assert_one_guard(&d1);
    wait_single_owner_settles(&h1, &h2);
}

/// After a SIGCONT the VIP ends up on one host (which one is the election's business).
fn wait_single_owner_settles(h1: &Host, h2: &Host) {
    let mut last = Vec::new();
    let ok = wait_until(SETTLE, STEP, || {
        last = holders(&[h1, h2], VIP4);
        last.len() == 1
    });
    assert!(ok, "{VIP4} did not settle on one host: {last:?}");
}

/// A daemon frozen twice: the guard acts on each stop, not only the first (a resumed daemon's next
/// promise arms it again), and once per stop. No backup: only the guard or the 20 s lifetime can take
/// the VIP away. 1 s adverts: a loop late by half of master-down (1.3 s) is not a load hiccup.
#[test]
fn the_guard_acts_on_every_freeze() {
    if !require_root("the_guard_acts_on_every_freeze") {
        return;
    }
    let (lab, hosts) = lab_with_hosts("guardtwice", 1, false);
    let h1 = &hosts[0];
    let d1 = Node::spawn(
        &lab,
        h1,
        &[Instance::v4(150).interval("1s").extra(LONG_LIFE)],
    );
    for round in 1..=2 {
        wait_sole_owner(&[h1], h1, VIP4, SETTLE);
        assert_one_guard(&d1);
        assert!(d1.proc.signal(libc::SIGSTOP), "h1's daemon has exited");
        let gone = wait_not_holding(h1, VIP4, FROZEN_BOUND);
        assert!(d1.proc.signal(libc::SIGCONT));
        assert!(
            gone,
            "stop #{round}: the frozen daemon's VIP was still on h1 after {FROZEN_BOUND:?}; log:\n{}",
            d1.log()
        );
        // Resumed, the daemon still believes it is master and puts the VIP back (its lifetime
        // refresh re-adds it), then the next round freezes it again.
        d1.wait_up();
    }
    assert_eq!(
        d1.log()
            .matches("floatip guard: the daemon has not advanced for")
            .count(),
        2,
        "one removal per freeze; log:\n{}",
        d1.log()
    );
}

/// A clean stop: the daemon hands over and releases the VIP itself; the guard then finds nothing
/// held, removes nothing, says nothing, and exits with it. (1 s adverts, so that a loaded machine
/// cannot make the loop late enough for the guard to act before the stop.)
#[test]
fn a_clean_stop_leaves_no_guard_and_removes_nothing() {
    if !require_root("a_clean_stop_leaves_no_guard_and_removes_nothing") {
        return;
    }
    let (_lab, h1, h2, mut d1, _d2) = master_and_backup("guardclean", "1s");
    let status = d1.stop();
    assert!(status.success(), "h1's daemon exited with {status}");
    wait_sole_owner(&[&h1, &h2], &h2, VIP4, SETTLE);
    assert_guard_exits(&h1);
    assert!(
        !d1.log().contains("floatip guard:"),
        "the guard must have nothing to do after a clean stop; log:\n{}",
        d1.log()
    );
}

/// kill -9 of floatip's daemon with keepalived (which knows nothing of floatip) as the backup, at
/// 100 ms adverts: keepalived claims after its master-down, and the guard has taken the VIP off h1
/// before that, so the two never hold it together.
#[test]
fn kill9_master_with_a_keepalived_backup_never_two_owners() {
    let name = "kill9_master_with_a_keepalived_backup_never_two_owners";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2) = two_hosts("guardka");
    let d1 = Node::spawn(&lab, &h1, &[Instance::v4(150)]);
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    let k = start_keepalived(&lab, &h2, &KaInstance::v4(100, 3, "0.1"));
    assert!(
        wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")),
        "keepalived did not start as backup: {}",
        k.log()
    );
    wait_sole_owner(&[&h1, &h2], &h1, VIP4, SETTLE);
    assert_one_guard(&d1);
    assert!(d1.kill(), "h1's daemon had already exited");
    let (both, h1_gone, h2_claimed) = watch_failover(&h1, &h2);
    assert!(
        both.is_empty(),
        "h1 and keepalived on h2 both held {VIP4} in {} samples (first #{}); h1 log:\n{}",
        both.len(),
        both[0],
        d1.log()
    );
    assert!(
        h2_claimed.is_some(),
        "keepalived never claimed; log:\n{}",
        k.log()
    );
    assert!(
        h1_gone.is_some() && h1_gone <= h2_claimed,
        "the VIP must leave h1 before keepalived claims it"
    );
    assert_guard_exits(&h1);
}
