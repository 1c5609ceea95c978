//! Who held an address when: one host's [`Timeline`] of an address and of its link (what an
//! [`AddrWatch`](crate::AddrWatch) recorded), and the interval arithmetic over several hosts'
//! timelines ([`ownership`]: the spans with two or more holders and the spans with none).
//!
//! Times are unix seconds as `f64`, the clock of [`unix_now`](crate::unix_now) and of the
//! [`Pinger`](crate::Pinger)'s replies, one clock for every host of a lab.

use std::net::IpAddr;
use std::time::Duration;

/// A half-open interval `[from, to)` of unix seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// Start, unix seconds.
    pub from: f64,
    /// End, unix seconds (not included).
    pub to: f64,
}

impl Span {
    /// A span; `to` before `from` gives an empty span.
    pub fn new(from: f64, to: f64) -> Span {
        Span {
            from,
            to: to.max(from),
        }
    }

    /// Its length in seconds.
    pub fn secs(&self) -> f64 {
        (self.to - self.from).max(0.0)
    }

    /// Its length.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.secs())
    }

    /// Whether `t` is inside: `from <= t < to`.
    pub fn contains(&self, t: f64) -> bool {
        self.from <= t && t < self.to
    }
}

/// What changed, as a watch saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    /// The address appeared on one of the host's interfaces (RTM_NEWADDR).
    AddrAdded,
    /// The address left the host (RTM_DELADDR: removed, or its lifetime expired).
    AddrRemoved,
    /// The host's eth0 is up with carrier (IFF_UP and IFF_LOWER_UP).
    LinkUp,
    /// The host's eth0 lost carrier (e.g. its switch port went down), was set down or deleted.
    LinkDown,
}

/// One change of state, with the time the watch read it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WatchEvent {
    /// Unix seconds.
    pub at: f64,
    /// What changed.
    pub kind: WatchKind,
}

/// What one host's watch recorded: the state when it started and every change after (only
/// changes: a lifetime refresh of an address already held is not an event).
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// The host's name.
    pub host: String,
    /// The address watched.
    pub addr: IpAddr,
    /// When the watch started (its subscription was in place), unix seconds.
    pub since: f64,
    /// Whether the host held the address when the watch started.
    pub held_at_start: bool,
    /// Whether eth0 was up with carrier when the watch started.
    pub link_up_at_start: bool,
    /// Changes, in the order read (so in time order).
    pub events: Vec<WatchEvent>,
    /// How many times the kernel dropped events because the watch fell behind (ENOBUFS). The
    /// watch re-reads the state each time, so the timeline stays right but a change shorter than
    /// the re-read may be missing.
    pub lost: u64,
    /// Why the recording is incomplete, if it is (a read error, the event cap reached).
    pub error: Option<String>,
}

impl Timeline {
    fn spans(&self, start: bool, on: WatchKind, off: WatchKind, until: f64) -> Vec<Span> {
        let mut out = Vec::new();
        let mut open = start.then_some(self.since);
        for e in &self.events {
            if e.at >= until {
                break;
            }
            if e.kind == on && open.is_none() {
                open = Some(e.at);
            } else if e.kind == off {
                if let Some(f) = open.take() {
                    out.push(Span::new(f, e.at));
                }
            }
        }
        if let Some(f) = open {
            if f < until {
                out.push(Span::new(f, until));
            }
        }
        out.retain(|s| s.secs() > 0.0);
        out
    }

    /// The spans during which the host held the address, up to `until`.
    pub fn held(&self, until: f64) -> Vec<Span> {
        self.spans(
            self.held_at_start,
            WatchKind::AddrAdded,
            WatchKind::AddrRemoved,
            until,
        )
    }

    /// The spans during which the host's eth0 was up with carrier, up to `until`.
    pub fn link_up(&self, until: f64) -> Vec<Span> {
        self.spans(
            self.link_up_at_start,
            WatchKind::LinkUp,
            WatchKind::LinkDown,
            until,
        )
    }

    /// The spans during which the host held the address and its link was up: when clients on the
    /// LAN could reach it there.
    pub fn reachable(&self, until: f64) -> Vec<Span> {
        intersect(&self.held(until), &self.link_up(until))
    }

    /// Whether the host held the address at `t` (false before the watch started).
    pub fn holds_at(&self, t: f64) -> bool {
        self.held(t + 1.0).iter().any(|s| s.contains(t))
    }
}

/// A span during which two or more hosts held the address, and which.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedSpan {
    /// When.
    pub span: Span,
    /// The hosts holding it throughout the span, in the order of the timelines given.
    pub holders: Vec<String>,
}

/// Ownership of one address over a window, from several hosts' timelines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ownership {
    /// The window, `from` raised to the latest watch start (no state is known before).
    pub window: Option<Span>,
    /// Spans with two or more holders (a new span whenever the set of holders changes).
    pub shared: Vec<SharedSpan>,
    /// Spans with no holder (adjacent spans merged).
    pub none: Vec<Span>,
}

impl Ownership {
    /// Seconds with two or more holders.
    pub fn shared_secs(&self) -> f64 {
        self.shared.iter().map(|s| s.span.secs()).sum()
    }

    /// Seconds with no holder.
    pub fn none_secs(&self) -> f64 {
        total(&self.none)
    }

    /// The spans with two or more holders, without their holders.
    pub fn shared_spans(&self) -> Vec<Span> {
        self.shared.iter().map(|s| s.span).collect()
    }
}

/// Who held the address between `from` and `to`, from every host's timeline. With
/// `reachable_only`, a host counts as a holder only while its link is up (see
/// [`Timeline::reachable`]); otherwise whenever it has the address. The window starts no earlier
/// than the latest watch start.
pub fn ownership(timelines: &[Timeline], from: f64, to: f64, reachable_only: bool) -> Ownership {
    let from = timelines.iter().map(|t| t.since).fold(from, f64::max);
    if to <= from {
        return Ownership::default();
    }
    let holding: Vec<Vec<Span>> = timelines
        .iter()
        .map(|t| {
            let v = if reachable_only {
                t.reachable(to)
            } else {
                t.held(to)
            };
            intersect(&v, &[Span::new(from, to)])
        })
        .collect();
    let mut cuts = vec![from, to];
    for s in holding.iter().flatten() {
        cuts.push(s.from);
        cuts.push(s.to);
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut out = Ownership {
        window: Some(Span::new(from, to)),
        ..Ownership::default()
    };
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b <= a {
            continue;
        }
        let mid = a + (b - a) / 2.0;
        let holders: Vec<String> = timelines
            .iter()
            .zip(&holding)
            .filter(|(_, h)| h.iter().any(|s| s.contains(mid)))
            .map(|(t, _)| t.host.clone())
            .collect();
        match holders.len() {
            0 => match out.none.last_mut() {
                Some(l) if l.to == a => l.to = b,
                _ => out.none.push(Span::new(a, b)),
            },
            1 => {}
            _ => match out.shared.last_mut() {
                Some(l) if l.span.to == a && l.holders == holders => l.span.to = b,
                _ => out.shared.push(SharedSpan {
                    span: Span::new(a, b),
                    holders,
                }),
            },
        }
    }
    out
}

/// Sorted, overlapping and touching spans merged, empty ones dropped.
pub fn normalize(spans: &[Span]) -> Vec<Span> {
    let mut v: Vec<Span> = spans.iter().copied().filter(|s| s.secs() > 0.0).collect();
    v.sort_by(|a, b| a.from.total_cmp(&b.from));
    let mut out: Vec<Span> = Vec::with_capacity(v.len());
    for s in v {
        match out.last_mut() {
            Some(l) if s.from <= l.to => l.to = l.to.max(s.to),
            _ => out.push(s),
        }
    }
    out
}

/// Total seconds covered by `spans` (overlaps counted once).
pub fn total(spans: &[Span]) -> f64 {
    normalize(spans).iter().map(Span::secs).sum()
}

/// The parts of `a` also inside `b`.
pub fn intersect(a: &[Span], b: &[Span]) -> Vec<Span> {
    let (a, b) = (normalize(a), normalize(b));
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let from = a[i].from.max(b[j].from);
        let to = a[i].to.min(b[j].to);
        if to > from {
            out.push(Span::new(from, to));
        }
        if a[i].to < b[j].to {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The parts of `a` outside `b`.
pub fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let b = normalize(b);
    let mut out = Vec::new();
    for s in normalize(a) {
        let mut from = s.from;
        for c in b.iter().filter(|c| c.to > s.from && c.from < s.to) {
            if c.from > from {
                out.push(Span::new(from, c.from));
            }
            from = from.max(c.to);
        }
        if from < s.to {
            out.push(Span::new(from, s.to));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use WatchKind::*;

    fn sp(from: f64, to: f64) -> Span {
        Span::new(from, to)
    }

    fn tl(host: &str, held: bool, link: bool, ev: &[(f64, WatchKind)]) -> Timeline {
        Timeline {
            host: host.into(),
            addr: "192.0.2.97".parse().unwrap(),
            since: 0.0,
            held_at_start: held,
            link_up_at_start: link,
            events: ev
                .iter()
                .map(|&(at, kind)| WatchEvent { at, kind })
                .collect(),
            lost: 0,
            error: None,
        }
    }

    #[test]
    fn span_algebra() {
        assert_eq!(
            normalize(&[
                sp(5.0, 6.0),
                sp(1.0, 3.0),
                sp(2.0, 4.0),
                sp(4.0, 4.5),
                sp(7.0, 7.0)
            ]),
            vec![sp(1.0, 4.5), sp(5.0, 6.0)]
        );
        assert_eq!(total(&[sp(1.0, 3.0), sp(2.0, 4.0)]), 3.0);
        assert_eq!(
            intersect(&[sp(0.0, 10.0)], &[sp(2.0, 3.0), sp(5.0, 12.0)]),
            vec![sp(2.0, 3.0), sp(5.0, 10.0)]
        );
        assert_eq!(intersect(&[sp(0.0, 1.0)], &[sp(1.0, 2.0)]), vec![]);
        assert_eq!(
            subtract(
                &[sp(0.0, 10.0), sp(20.0, 30.0)],
                &[sp(2.0, 3.0), sp(9.0, 21.0)]
            ),
            vec![sp(0.0, 2.0), sp(3.0, 9.0), sp(21.0, 30.0)]
        );
        assert_eq!(subtract(&[sp(1.0, 2.0)], &[sp(0.0, 5.0)]), vec![]);
        assert_eq!(subtract(&[sp(1.0, 2.0)], &[]), vec![sp(1.0, 2.0)]);
        assert_eq!(Span::new(3.0, 1.0).secs(), 0.0);
    }

    #[test]
    fn timeline_spans_follow_changes() {
        let t = tl(
            "h1",
            true,
            true,
            &[
                (2.0, AddrRemoved),
                (3.0, LinkDown),
                (4.0, AddrAdded),
                (6.0, LinkUp),
            ],
        );
        assert_eq!(t.held(10.0), vec![sp(0.0, 2.0), sp(4.0, 10.0)]);
        assert_eq!(t.link_up(10.0), vec![sp(0.0, 3.0), sp(6.0, 10.0)]);
        assert_eq!(t.reachable(10.0), vec![sp(0.0, 2.0), sp(6.0, 10.0)]);
        assert!(t.holds_at(1.0) && !t.holds_at(2.5) && t.holds_at(4.0));
        // Events at or after `until` do not count; an open span ends at `until`.
        assert_eq!(t.held(3.0), vec![sp(0.0, 2.0)]);
        assert_eq!(t.held(5.0), vec![sp(0.0, 2.0), sp(4.0, 5.0)]);
    }

    #[test]
    fn ownership_finds_overlaps_and_gaps() {
        // h1 holds 0-5; h2 takes it at 4.5 (0.5 s of two owners) and drops it at 8; h3 at 9.
        let t = [
            tl("h1", true, true, &[(5.0, AddrRemoved)]),
            tl("h2", false, true, &[(4.5, AddrAdded), (8.0, AddrRemoved)]),
            tl("h3", false, true, &[(9.0, AddrAdded)]),
        ];
        let o = ownership(&t, 0.0, 10.0, false);
        assert_eq!(o.shared.len(), 1);
        assert_eq!(o.shared[0].span, sp(4.5, 5.0));
        assert_eq!(
            o.shared[0].holders,
            vec!["h1".to_string(), "h2".to_string()]
        );
        assert_eq!(o.none, vec![sp(8.0, 9.0)]);
        assert!((o.shared_secs() - 0.5).abs() < 1e-9);
        assert!((o.none_secs() - 1.0).abs() < 1e-9);
        assert_eq!(o.window, Some(sp(0.0, 10.0)));
    }

    #[test]
    fn ownership_splits_by_holder_set_and_merges_gaps() {
        let t = [
            tl("a", true, true, &[(3.0, AddrRemoved)]),
            tl("b", true, true, &[(5.0, AddrRemoved)]),
            tl("c", false, true, &[(2.0, AddrAdded), (4.0, AddrRemoved)]),
        ];
        let o = ownership(&t, 0.0, 6.0, false);
        let got: Vec<(Span, usize)> = o.shared.iter().map(|s| (s.span, s.holders.len())).collect();
        // a+b 0-2; a+b+c 2-3; b+c 3-4; then b alone 4-5; nobody 5-6.
        assert_eq!(
            got,
            vec![(sp(0.0, 2.0), 2), (sp(2.0, 3.0), 3), (sp(3.0, 4.0), 2)]
        );
        assert_eq!(o.none, vec![sp(5.0, 6.0)]);
        // Nobody at all: one merged gap over the whole window.
        let empty = [tl("a", false, true, &[]), tl("b", false, true, &[])];
        assert_eq!(ownership(&empty, 1.0, 2.0, false).none, vec![sp(1.0, 2.0)]);
    }

    #[test]
    fn ownership_reachable_only_ignores_hosts_without_link() {
        // h1's cable is pulled at 1 (it keeps the address); h2 claims at 1.4; h1's link returns
        // at 3 and it drops the address at 3.2.
        let t = [
            tl(
                "h1",
                true,
                true,
                &[(1.0, LinkDown), (3.0, LinkUp), (3.2, AddrRemoved)],
            ),
            tl("h2", false, true, &[(1.4, AddrAdded)]),
        ];
        let all = ownership(&t, 0.0, 5.0, false);
        assert_eq!(all.shared_spans(), vec![sp(1.4, 3.2)]);
        assert!(all.none.is_empty());
        let reach = ownership(&t, 0.0, 5.0, true);
        assert_eq!(reach.shared_spans(), vec![sp(3.0, 3.2)]);
        assert_eq!(reach.none, vec![sp(1.0, 1.4)]);
    }

    #[test]
    fn ownership_window_starts_at_the_latest_watch() {
        let mut late = tl("b", false, true, &[]);
        late.since = 2.0;
        let t = [tl("a", false, true, &[(3.0, AddrAdded)]), late];
        let o = ownership(&t, 0.0, 5.0, false);
        assert_eq!(o.window, Some(sp(2.0, 5.0)));
        assert_eq!(o.none, vec![sp(2.0, 3.0)]);
        assert_eq!(ownership(&t, 6.0, 5.0, false), Ownership::default());
    }
}
