//! Who holds a VIP: waits for (and samples of) the holders among a lab's hosts, and where a
//! client's neighbour entry points.

use std::time::{Duration, Instant};

use floatip_lab::{wait_until, Host};

use super::{SETTLE, STEP};

/// Names of the hosts among `hosts` whose eth0 has `vip`.
pub fn holders(hosts: &[&Host], vip: &str) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| h.has_address(vip))
        .map(|h| h.name.clone())
        .collect()
}

/// Waits until the holders of `vip` among `hosts` are exactly `owner` (nobody, with `None`).
/// Panics after `timeout`, naming `why` (if not empty) and who holds it.
pub fn wait_holders(
    hosts: &[&Host],
    owner: Option<&Host>,
    vip: &str,
    timeout: Duration,
    why: &str,
) {
    let want: Vec<String> = owner.map(|h| h.name.clone()).into_iter().collect();
    let mut last = Vec::new();
    let ok = wait_until(timeout, STEP, || {
        last = holders(hosts, vip);
        last == want
    });
    let why = if why.is_empty() {
        String::new()
    } else {
        format!("{why}: ")
    };
    assert!(
        ok,
        "{why}expected holders of {vip} to be {want:?} within {timeout:?}; holders: {last:?}"
    );
}

/// Waits (within [`SETTLE`]) until `owner`, or nobody, is the only holder of `vip` among `hosts`.
pub fn wait_owner(hosts: &[&Host], owner: Option<&Host>, vip: &str) {
    wait_holders(hosts, owner, vip, SETTLE, "");
}

/// Waits until `owner` holds `vip` and no other host of `hosts` does.
pub fn wait_sole_owner(hosts: &[&Host], owner: &Host, vip: &str, timeout: Duration) {
    wait_holders(hosts, Some(owner), vip, timeout, "");
}

/// Waits until exactly one host of `hosts` holds `vip` and returns it.
pub fn wait_single_owner<'a>(hosts: &[&'a Host], vip: &str, timeout: Duration) -> &'a Host {
    let mut last = Vec::new();
    let ok = wait_until(timeout, STEP, || {
        last = holders(hosts, vip);
        last.len() == 1
    });
    assert!(
        ok,
        "no single owner of {vip} within {timeout:?}; holders: {last:?}"
    );
    hosts
        .iter()
        .find(|h| h.name == last[0])
        .copied()
        .expect("holder is one of hosts")
}

/// Samples every `step` for `duration` (at least once, and once more at the end): every sample
/// must show exactly `owner` (or nobody, with `None`) holding `vip`.
pub fn assert_owner_for(
    hosts: &[&Host],
    owner: Option<&Host>,
    vip: &str,
    duration: Duration,
    step: Duration,
) {
    let want: Vec<String> = owner.map(|h| h.name.clone()).into_iter().collect();
    let end = Instant::now() + duration;
    let mut samples = 0u32;
    loop {
        let h = holders(hosts, vip);
        samples += 1;
        assert_eq!(
            h, want,
            "sample {samples}: holders of {vip} should be {want:?}"
        );
        if Instant::now() >= end {
            break;
        }
        std::thread::sleep(step);
    }
}

/// [`assert_owner_for`] with `owner` as the one holder. (Exactly one owner, observed over several
/// adverts.)
pub fn assert_sole_owner_for(
    hosts: &[&Host],
    owner: &Host,
    vip: &str,
    duration: Duration,
    step: Duration,
) {
    assert_owner_for(hosts, Some(owner), vip, duration, step);
}

/// Waits until `host` does not hold `vip`.
pub fn wait_not_holding(host: &Host, vip: &str, timeout: Duration) -> bool {
    wait_until(timeout, STEP, || !host.has_address(vip))
}

/// Which of `hosts` a MAC belongs to, for messages.
pub fn mac_name(hosts: &[&Host], mac: Option<[u8; 6]>) -> String {
    match mac {
        None => "(no entry)".into(),
        Some(m) => hosts
            .iter()
            .find(|h| h.mac == m)
            .map_or_else(|| floatip_lab::format_mac(&m), |h| h.name.clone()),
    }
}

/// Waits (bounded) until the client's neighbour entry for `vip` is `owner`'s MAC.
pub fn wait_client_points_at(c: &Host, vip: &str, owner: &Host, all: &[&Host]) {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(5), STEP, || {
        last = c.neigh_mac(vip);
        last == Some(owner.mac)
    });
    assert!(
        ok,
        "the client's neighbour entry for {vip} should point at {} ({}), it points at {}",
        owner.name,
        owner.mac_string(),
        mac_name(all, last)
    );
}

/// Waits (bounded) until the client gets an answer from `vip` and resolves it to `owner`.
pub fn wait_client_reaches(c: &Host, vip: &str, owner: &Host, all: &[&Host]) {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(8), STEP, || {
        let ok = c.can_ping(vip);
        last = c.neigh_mac(vip);
        ok && last == Some(owner.mac)
    });
    assert!(
        ok,
        "the client should reach {vip} at {} ({}); its neighbour entry points at {}",
        owner.name,
        owner.mac_string(),
        mac_name(all, last)
    );
}
