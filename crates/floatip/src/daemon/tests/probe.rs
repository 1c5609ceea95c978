//! Claiming, and putting back, a VIP only once nobody else answers for it.

use super::*;

const OTHER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

impl Harness {
    /// Another host answers for the VIP (an ARP reply to our probe, through the watch).
    fn answered_by_other(&mut self) {
        let _rt = self.runtime.enter();
        self.daemon.on_sighting(
            self.now,
            crate::conflict::Sighting {
                ifindex: IFINDEX,
                addr: vip(),
                holder: OTHER_MAC,
            },
        );
        self.daemon.carry_out(self.now);
    }

    /// Advances in 1 ms steps, with another host answering every probe at once (as a kernel that
    /// still has the VIP does).
    fn advance_answering(&mut self, by: Duration) {
        for _ in 0..by.as_millis() {
            self.advance(Duration::from_millis(1));
            if self.probes_sent() > 0 {
                self.answered_by_other();
            }
        }
    }

    fn probes_sent(&self) -> usize {
        self.host
            .take_log()
            .iter()
            .filter(|c| **c == Call::Probe(vip()))
            .count()
    }
}

#[test]
fn a_claim_after_silence_waits_while_another_host_answers_for_the_vip() {
    let mut h = Harness::start(&instance(51, 150));
    // Up to master-down: the claim is due, and the instance asks who answers first.
    h.advance(Duration::from_millis(342));
    assert!(h.probes_sent() >= 1, "a probe before the claim");
    assert_eq!(h.state(), State::Backup);
    h.answered_by_other();
    // A frozen master's kernel keeps answering for half a second.
    for _ in 0..100 {
        h.advance_answering(Duration::from_millis(5));
        assert_eq!(h.state(), State::Backup, "no claim while someone answers");
        assert!(!h.host.has(IFINDEX, vip()));
    }
    let st = h.daemon.instances[0].status(&[], h.now);
    let why = st.claim_inhibit.unwrap();
    assert!(why.contains("still answered by 02:00:00:00:00:09"), "{why}");
    // It stops answering (its lifetime ran out): the claim follows after our skew (other backups
    // that waited for the same VIP see it go at the same moment) and one more quiet round.
    let skew = h.daemon.instances[0].core.skew_time();
    h.advance(skew + Duration::from_millis(20));
    assert_eq!(h.state(), State::Master);
    assert!(h.host.has(IFINDEX, vip()));
}

#[test]
fn of_two_backups_released_at_once_the_better_one_claims() {
    // We are the lower one (priority 100): the stale VIP goes, and during our skew the better
    // backup claims and advertises; we stay backup and never add the VIP.
    let mut h = Harness::start(&instance(51, 100));
    h.advance_answering(Duration::from_millis(450));
    assert_eq!(h.state(), State::Backup);
    h.advance(Duration::from_millis(10));
    assert!(h.daemon.instances[0].core.probing(), "waiting out its skew");
    h.advert_from_peer(51, 200);
    h.advance(Duration::from_millis(200));
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(IFINDEX, vip()));
}

#[test]
fn a_vip_that_vanished_while_master_goes_back_only_once_nobody_answers() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    // Its lifetime ran out (or someone removed it): the kernel says so.
    h.host.remove_now(IFINDEX, vip());
    {
        let _rt = h.runtime.enter();
        h.daemon.on_net_event(
            h.now,
            crate::net::netlink::NetEvent::AddressRemoved {
                index: IFINDEX,
                addr: vip(),
                prefix_len: 24,
            },
        );
    }
    // Another host claimed it meanwhile and still answers: no second owner, and no refresh either.
    h.answered_by_other();
    for _ in 0..50 {
        h.advance_answering(Duration::from_millis(5));
        assert!(
            !h.host.has(IFINDEX, vip()),
            "put back while another host answers"
        );
    }
    h.advance(Duration::from_millis(10));
    assert!(h.host.has(IFINDEX, vip()));
    assert_eq!(h.daemon.instances[0].counters.vip_restored, 1);
}

#[test]
fn after_a_stall_a_missing_vip_is_probed_for_and_a_present_one_kept() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    // Stopped for 3 s: the VIP is still there (nothing to do).
    h.daemon.after_stall(h.now, Duration::from_secs(3));
    assert!(!h.daemon.instances[0].restoring());
    // Stopped again, and this time it went away (the guard, or its lifetime).
    h.host.remove_now(IFINDEX, vip());
    {
        let _rt = h.runtime.enter();
        h.daemon.after_stall(h.now, Duration::from_secs(3));
    }
    assert!(h.daemon.instances[0].restoring());
    assert!(h.probes_sent() >= 1);
    h.answered_by_other();
    h.advance(Duration::from_millis(4));
    assert!(!h.host.has(IFINDEX, vip()));
    h.advance(Duration::from_millis(10));
    assert!(h.host.has(IFINDEX, vip()));
}

#[test]
fn a_preemption_adds_the_vip_only_once_the_old_master_has_let_go() {
    let mut h = Harness::start(&instance(51, 150));
    // A lower-priority master (priority 100) serves the VIP; we preempt it at master-down.
    // (Its kernel answers every probe for the VIP meanwhile.)
    h.answered_by_other();
    for _ in 0..6 {
        h.advert_from_peer(51, 100);
        h.advance_answering(Duration::from_millis(100));
    }
    assert_eq!(h.state(), State::Master, "preempted");
    assert!(
        !h.host.has(IFINDEX, vip()),
        "the VIP waits while the old master still answers for it"
    );
    // It heard our advert and let go: the VIP goes up within a round or two, and is announced.
    h.advance(Duration::from_millis(10));
    assert!(h.host.has(IFINDEX, vip()));
    assert!(h.host.take_log().contains(&Call::Announce(vip())));
}

#[test]
fn after_a_stall_the_first_quiet_round_does_not_count() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.remove_now(IFINDEX, vip());
    {
        let _rt = h.runtime.enter();
        h.daemon.after_stall(h.now, Duration::from_secs(3));
    }
    // Nobody answers, but answers queued while the watch was stopped may still be on their way.
    h.advance(Duration::from_millis(5));
    assert!(!h.host.has(IFINDEX, vip()), "put back after one round");
    h.advance(Duration::from_millis(5));
    assert!(
        h.host.has(IFINDEX, vip()),
        "put back after two quiet rounds"
    );
}
