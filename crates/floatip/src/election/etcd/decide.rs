//! The etcd election's rules, pure: from what one read of an instance's keys showed ([`View`]) and
//! where this host stands ([`Me`]), the next [`Step`]. No I/O, so the claim, the preemption and the
//! make-before-break handoff are unit-tested here; the task in [`super`] carries the steps out
//! against etcd and the kernel.
//!
//! The keys, under `PREFIX<instance>/`: `owner` (the owner's node, under its lease),
//! `candidates/<address>` ([`CandidateRecord`], under each host's lease) and `handoff` ([`Handoff`]: a
//! planned move in progress, named by the owner under its lease, then taken by the successor, who
//! puts it under its own lease in the same transaction that makes it the owner, and deletes it once
//! it has added and announced the VIPs; only then does the old owner remove them).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The owner key: its value (`"<host> <address>"`) and lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    pub lease: i64,
}

/// A candidacy as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub priority: u8,
    pub address: IpAddr,
    /// Whether it takes the VIPs from a lower-priority owner (`preempt`, or a `takeover`).
    pub preempt: bool,
}

/// A `candidates/<address>` key's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateRecord {
    pub priority: u8,
    /// Absent (an older floatip): it preempts, the default.
    #[serde(default = "yes")]
    pub preempt: bool,
    #[serde(default)]
    pub node: String,
}

fn yes() -> bool {
    true
}

/// The `handoff` key's value: a planned move to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub to: IpAddr,
    /// `false`: named by the owner; `true`: taken (the successor owns the key and is adding the VIPs).
    pub taken: bool,
}

impl Handoff {
    pub fn to_json(self) -> String {
        serde_json::to_string(&self).unwrap_or_default()
    }
}

/// What one read of an instance's keys showed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct View {
    pub owner: Option<Owner>,
    pub candidates: Vec<Candidate>,
    pub handoff: Option<Handoff>,
}

/// Where this host stands.
#[derive(Debug, Clone, Copy)]
pub struct Me {
    pub address: IpAddr,
    /// Our lease, when we have one.
    pub lease: Option<i64>,
    /// We hold the VIPs.
    pub holding: bool,
    /// We may own the VIPs: a candidate (no failing check, no `release`) and not stopping.
    pub eligible: bool,
    /// The priority our candidacy carries.
    pub priority: u8,
    /// The successor we named, while a handoff of ours is in progress.
    pub handing_to: Option<IpAddr>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to change.
    Stay,
    /// The owner key is free and we are the best candidate: claim it (once nobody answers for the
    /// VIPs on the LAN).
    Claim,
    /// The owner named us its successor: take the key over from its lease `from`.
    TakeHandoff { from: i64 },
    /// The key is ours but we do not hold the VIPs (we let go when a renewal was late, and the lease
    /// lived on): add them again.
    Readd,
    /// We hold the VIPs and the key is someone else's (or nobody's): remove them.
    LetGo,
    /// The successor we named owns the key and is announcing: keep the VIPs until it says it has.
    AwaitAnnounce,
    /// A handoff of ours is in progress: keep the VIPs while the successor takes the key.
    AwaitSuccessor,
    /// A better candidate that preempts is up: name it our successor.
    Preempted { to: IpAddr },
    /// We may no longer own the VIPs (a failing check, `release`, a stop): name the best other
    /// candidate our successor, or, with none, let go and free the key.
    Withdraw { to: Option<IpAddr> },
}

/// The best candidate: the highest priority, ties to the higher address (as VRRP breaks them).
pub fn best(candidates: &[Candidate]) -> Option<IpAddr> {
    candidates
        .iter()
        .max_by_key(|c| (c.priority, c.address))
        .map(|c| c.address)
}

/// The best candidate other than `me`: a planned move's successor.
pub fn successor(view: &View, me: IpAddr) -> Option<IpAddr> {
    let others: Vec<Candidate> = view
        .candidates
        .iter()
        .copied()
        .filter(|c| c.address != me)
        .collect();
    best(&others)
}

/// The best candidate that would take the VIPs from an owner of `priority`: a higher priority
/// (a tie does not preempt, as in VRRP) and `preempt`.
fn preempting(view: &View, me: IpAddr, priority: u8) -> Option<IpAddr> {
    let over: Vec<Candidate> = view
        .candidates
        .iter()
        .copied()
        .filter(|c| c.address != me && c.preempt && c.priority > priority)
        .collect();
    best(&over)
}

/// The next step.
pub fn decide(view: &View, me: &Me) -> Step {
    let ours = me.lease.is_some() && view.owner.as_ref().map(|o| o.lease) == me.lease;
    if me.holding {
        if !ours {
            let announcing = me.handing_to.is_some()
                && me.handing_to.map(|to| Handoff { to, taken: true }) == view.handoff;
            return if announcing {
                Step::AwaitAnnounce
            } else {
                Step::LetGo
            };
        }
        if me.handing_to.is_some() {
            return Step::AwaitSuccessor;
        }
        if !me.eligible {
            return Step::Withdraw {
                to: successor(view, me.address),
            };
        }
        return match preempting(view, me.address, me.priority) {
            Some(to) => Step::Preempted { to },
            None => Step::Stay,
        };
    }
    if ours {
        return if me.eligible {
            Step::Readd
        } else {
            Step::Withdraw { to: None }
        };
    }
    if !me.eligible || me.lease.is_none() {
        return Step::Stay;
    }
    match (&view.owner, view.handoff) {
        (Some(owner), Some(h)) if h.to == me.address && !h.taken => {
            Step::TakeHandoff { from: owner.lease }
        }
        (None, _) if best(&view.candidates) == Some(me.address) => Step::Claim,
        _ => Step::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    fn cand(n: u8, priority: u8, preempt: bool) -> Candidate {
        Candidate {
            priority,
            address: a(n),
            preempt,
        }
    }

    fn owner(lease: i64) -> Option<Owner> {
        Some(Owner {
            node: format!("h{lease} {}", a(lease as u8)),
            lease,
        })
    }

    /// Host `n` with lease `n`, priority `p`, eligible, not holding.
    fn me(n: u8, p: u8) -> Me {
        Me {
            address: a(n),
            lease: Some(n as i64),
            holding: false,
            eligible: true,
            priority: p,
            handing_to: None,
        }
    }

    #[test]
    fn the_best_candidate_claims_a_free_key_and_ties_go_to_the_higher_address() {
        let view = View {
            candidates: vec![cand(1, 100, true), cand(2, 100, true)],
            ..View::default()
        };
        assert_eq!(decide(&view, &me(2, 100)), Step::Claim);
        assert_eq!(decide(&view, &me(1, 100)), Step::Stay);
        // Without a lease, or not eligible: never.
        let mut m = me(2, 100);
        m.eligible = false;
        assert_eq!(decide(&view, &m), Step::Stay);
        m = me(2, 100);
        m.lease = None;
        assert_eq!(decide(&view, &m), Step::Stay);
    }

    #[test]
    fn a_held_key_is_not_claimed_and_a_holder_without_the_key_lets_go() {
        let view = View {
            owner: owner(1),
            candidates: vec![cand(1, 100, true), cand(2, 200, true)],
            handoff: None,
        };
        assert_eq!(decide(&view, &me(2, 200)), Step::Stay);
        let mut m = me(2, 200);
        m.holding = true;
        assert_eq!(decide(&view, &m), Step::LetGo);
        // Nobody's key while we hold: let go too (the lease ended in etcd).
        let free = View {
            owner: None,
            ..view
        };
        assert_eq!(decide(&free, &m), Step::LetGo);
    }

    #[test]
    fn only_a_higher_priority_that_preempts_takes_over_not_a_tie_nor_nopreempt() {
        let mut m = me(1, 150);
        m.holding = true;
        let mut view = View {
            owner: owner(1),
            candidates: vec![cand(1, 150, true), cand(2, 150, true), cand(3, 200, false)],
            handoff: None,
        };
        assert_eq!(decide(&view, &m), Step::Stay);
        view.candidates.push(cand(4, 160, true));
        assert_eq!(decide(&view, &m), Step::Preempted { to: a(4) });
    }

    #[test]
    fn a_withdrawn_owner_names_the_best_other_candidate_or_frees_the_key() {
        let mut m = me(1, 150);
        m.holding = true;
        m.eligible = false;
        let mut view = View {
            owner: owner(1),
            candidates: vec![cand(1, 150, true), cand(2, 100, false), cand(3, 120, true)],
            handoff: None,
        };
        assert_eq!(decide(&view, &m), Step::Withdraw { to: Some(a(3)) });
        view.candidates = vec![cand(1, 150, true)];
        assert_eq!(decide(&view, &m), Step::Withdraw { to: None });
        // The key still ours after we let go (a failed delete): free it, never re-add.
        m.holding = false;
        assert_eq!(decide(&view, &m), Step::Withdraw { to: None });
        m.eligible = true;
        assert_eq!(decide(&view, &m), Step::Readd);
    }

    #[test]
    fn the_named_successor_takes_the_key_and_the_owner_waits_for_its_announcement() {
        let named = View {
            owner: owner(1),
            candidates: vec![cand(1, 100, true), cand(2, 200, true), cand(3, 250, true)],
            handoff: Some(Handoff {
                to: a(2),
                taken: false,
            }),
        };
        // Only the one named takes it, not a better candidate that was not.
        assert_eq!(decide(&named, &me(2, 200)), Step::TakeHandoff { from: 1 });
        assert_eq!(decide(&named, &me(3, 250)), Step::Stay);
        let mut old = me(1, 100);
        old.holding = true;
        old.handing_to = Some(a(2));
        assert_eq!(decide(&named, &old), Step::AwaitSuccessor);
        // Taken: h2 owns the key and announces; h1 keeps the VIPs until the handoff key goes.
        let taken = View {
            owner: owner(2),
            handoff: Some(Handoff {
                to: a(2),
                taken: true,
            }),
            ..named.clone()
        };
        assert_eq!(decide(&taken, &old), Step::AwaitAnnounce);
        let announced = View {
            handoff: None,
            ..taken.clone()
        };
        assert_eq!(decide(&announced, &old), Step::LetGo);
        // Someone else took the key (not our successor): no waiting.
        let other = View {
            owner: owner(3),
            handoff: None,
            ..taken
        };
        assert_eq!(decide(&other, &old), Step::LetGo);
        // A successor that is not eligible (its check failed meanwhile) does not take it.
        let mut sick = me(2, 200);
        sick.eligible = false;
        assert_eq!(decide(&named, &sick), Step::Stay);
    }

    #[test]
    fn records_without_preempt_preempt_and_handoffs_round_trip() {
        let r: CandidateRecord = serde_json::from_str(r#"{"priority":7}"#).unwrap();
        assert!(r.preempt && r.priority == 7);
        let h = Handoff {
            to: a(2),
            taken: true,
        };
        assert_eq!(serde_json::from_str::<Handoff>(&h.to_json()).unwrap(), h);
    }
}
