//! [`AddrWatch`]: one host's address and link events for one address, straight from the kernel
//! (an rtnetlink socket opened inside the host's namespace), each timestamped on the lab's clock
//! as it is read. Its [`Timeline`]s go to [`ownership`](crate::ownership).

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::addr::parse_lab_ip;
use crate::owners::{Timeline, WatchEvent, WatchKind};
use crate::{sys, unix_now, wait_until, Host};

/// Most state changes one watch records; past that it stops recording and says so in
/// [`Timeline::error`] (a flapping address at 100 changes a second fills it in 15 minutes).
pub const MAX_WATCH_EVENTS: usize = 100_000;
/// How often the reader wakes to notice it should stop.
const POLL: Duration = Duration::from_millis(50);
/// The interface whose link state is watched: every lab host's LAN port.
const IFNAME: &str = "eth0";

// rtnetlink, from <linux/rtnetlink.h>, <linux/if_addr.h>, <linux/if_link.h>.
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const IFINFOMSG_LEN: usize = 16;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

struct State {
    timeline: Timeline,
    held: bool,
    link_up: bool,
}

impl State {
    fn apply(&mut self, at: f64, change: Change) {
        let (now, was, on, off) = match change {
            Change::Addr(v) => (
                v,
                &mut self.held,
                WatchKind::AddrAdded,
                WatchKind::AddrRemoved,
            ),
            Change::Link(v) => (v, &mut self.link_up, WatchKind::LinkUp, WatchKind::LinkDown),
        };
        if now == *was {
            return;
        }
        if self.timeline.events.len() >= MAX_WATCH_EVENTS {
            self.timeline.error.get_or_insert_with(|| {
                format!("more than {MAX_WATCH_EVENTS} changes; stopped recording")
            });
            return;
        }
        *was = now;
        let kind = if now { on } else { off };
        self.timeline.events.push(WatchEvent { at, kind });
    }
}

struct Inner {
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Inner {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Records every add and remove of one address in one lab host, and its eth0 going down (carrier
/// lost, e.g. [`Host::link_down`]) and up, from the kernel's rtnetlink events. A dedicated thread
/// reads an rtnetlink socket opened inside the host's namespace and timestamps each event with
/// [`unix_now`] as it reads it: one clock for every host of the lab (and the [`Pinger`](crate::Pinger)).
/// Only changes are recorded (an address refreshed in place is not one), at most
/// [`MAX_WATCH_EVENTS`]. Dropping the watch (or [`stop`](Self::stop)) ends the thread and closes
/// the socket within about 50 ms.
///
/// Resolution: the time the reader thread got the event, normally tens of µs after the kernel
/// sent it; on a loaded machine it can lag by a scheduling delay.
pub struct AddrWatch {
    host: String,
    addr: IpAddr,
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl AddrWatch {
    /// Starts watching `addr` ("192.0.2.97" or "2001:db8::97", a length is ignored; only lab
    /// addresses) on `host`. The subscription is in place when this returns, and the state at that
    /// moment (address held? link up?) is read with `ip`.
    pub fn start(host: &Host, addr: &str) -> Result<AddrWatch> {
        let ip = parse_lab_ip(addr)?;
        let groups =
            (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        let sock = sys::netlink_route_socket_in(&host.netns, groups)
            .with_context(|| format!("rtnetlink socket in {}", host.netns))?;
        sock.set_read_timeout(Some(POLL))?;
        let since = unix_now();
        let (held, link_up) = read_state(host, ip)?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                timeline: Timeline {
                    host: host.name.clone(),
                    addr: ip,
                    since,
                    held_at_start: held,
                    link_up_at_start: link_up,
                    events: Vec::new(),
                    lost: 0,
                    error: None,
                },
                held,
                link_up,
            }),
            stop: AtomicBool::new(false),
        });
        let (h, i) = (host.clone(), inner.clone());
        let thread = std::thread::Builder::new()
            .name(format!("addrwatch-{}", host.name))
            .spawn(move || reader(sock, &h, ip, &i))?;
        Ok(AddrWatch {
            host: host.name.clone(),
            addr: ip,
            inner,
            thread: Some(thread),
        })
    }

    /// The host's name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The address watched.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Whether the host holds the address now (as far as the events read so far say).
    pub fn holds(&self) -> bool {
        self.inner.st().held
    }

    /// Whether the host's eth0 is up with carrier now (as far as the events read so far say).
    pub fn link_up(&self) -> bool {
        self.inner.st().link_up
    }

    /// Waits at most `timeout` until [`holds`](Self::holds) is `want`; whether it got there.
    pub fn wait_holds(&self, want: bool, timeout: Duration) -> bool {
        wait_until(timeout, Duration::from_millis(1), || self.holds() == want)
    }

    /// What has been recorded so far.
    pub fn timeline(&self) -> Timeline {
        self.inner.st().timeline.clone()
    }

    /// Stops the watch and returns what it recorded.
    pub fn stop(mut self) -> Timeline {
        self.halt();
        self.timeline()
    }

    fn halt(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AddrWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

impl std::fmt::Debug for AddrWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddrWatch")
            .field("host", &self.host)
            .field("addr", &self.addr)
            .finish()
    }
}

/// (address held, eth0 up with carrier) now, from `ip`.
fn read_state(host: &Host, addr: IpAddr) -> Result<(bool, bool)> {
    let held = host
        .ip(&["-o", "addr", "show"])?
        .lines()
        .filter_map(|l| {
            let mut t = l.split_whitespace();
            t.find(|w| *w == "inet" || *w == "inet6")?;
            t.next()?.split('/').next()?.parse::<IpAddr>().ok()
        })
        .any(|a| a == addr);
    let link = host.ip(&["-o", "link", "show", "dev", IFNAME])?;
    Ok((held, link_flags_up(&link)))
}

/// Whether an `ip -o link` line's flags say up with carrier: `<...,UP,LOWER_UP>`.
fn link_flags_up(line: &str) -> bool {
    let flags = line
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map_or("", |(f, _)| f);
    let has = |x: &str| flags.split(',').any(|f| f == x);
    has("UP") && has("LOWER_UP")
}

fn reader(sock: UdpSocket, host: &Host, addr: IpAddr, inner: &Inner) {
    let mut buf = vec![0u8; 64 * 1024];
    while !inner.stop.load(Ordering::SeqCst) {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let at = unix_now();
                let changes = parse_messages(&buf[..n], addr);
                let mut st = inner.st();
                for c in changes {
                    st.apply(at, c);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // The kernel dropped events: read the state again so the timeline stays right.
                let at = unix_now();
                let now = read_state(host, addr);
                let mut st = inner.st();
                st.timeline.lost += 1;
                match now {
                    Ok((held, link)) => {
                        st.apply(at, Change::Addr(held));
                        st.apply(at, Change::Link(link));
                    }
                    Err(e) => {
                        st.timeline.error = Some(format!("re-reading the state failed: {e:#}"));
                        return;
                    }
                }
            }
            Err(e) => {
                inner.st().timeline.error = Some(format!("rtnetlink read failed: {e}"));
                return;
            }
        }
    }
}

/// A state change an rtnetlink message reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// The watched address was added (true) or removed (false).
    Addr(bool),
    /// eth0 is up with carrier (true) or not (false).
    Link(bool),
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The (type, payload) of each route attribute in `b`.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(ty)) = (u16_at(b, 0), u16_at(b, 2)) {
        let len = usize::from(len);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty & 0x3fff, &b[4..len]));
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

/// The changes that the rtnetlink messages in one datagram report for `addr` and eth0. Anything
/// else (other addresses, interfaces, message types, truncated messages) is ignored.
fn parse_messages(mut b: &[u8], addr: IpAddr) -> Vec<Change> {
    let mut out = Vec::new();
    while let (Some(len), Some(ty)) = (u32_at(b, 0), u16_at(b, 4)) {
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            break;
        }
        let payload = &b[NLMSG_HDRLEN..len];
        match ty {
            RTM_NEWADDR | RTM_DELADDR if payload.len() >= IFADDRMSG_LEN => {
                let a = attrs(&payload[IFADDRMSG_LEN..]);
                let pick = |want: u16| a.iter().find(|(t, _)| *t == want).map(|(_, v)| *v);
                // IPv4: IFA_LOCAL is the address itself (IFA_ADDRESS is the peer's on a
                // point-to-point link); IPv6 only has IFA_ADDRESS.
                let raw = pick(IFA_LOCAL).or_else(|| pick(IFA_ADDRESS));
                let ip = raw.and_then(|v| match v.len() {
                    4 => <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
                    _ => None,
                });
                if ip == Some(addr) {
                    out.push(Change::Addr(ty == RTM_NEWADDR));
                }
            }
            RTM_NEWLINK | RTM_DELLINK if payload.len() >= IFINFOMSG_LEN => {
                let flags = u32_at(payload, 8).unwrap_or(0);
                let name = attrs(&payload[IFINFOMSG_LEN..])
                    .into_iter()
                    .find(|(t, _)| *t == IFLA_IFNAME)
                    .map(|(_, v)| v.split(|c| *c == 0).next().unwrap_or(v));
                if name == Some(IFNAME.as_bytes()) {
                    let up = ty == RTM_NEWLINK && flags & IFF_UP != 0 && flags & IFF_LOWER_UP != 0;
                    out.push(Change::Link(up));
                }
            }
            _ => {}
        }
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        v.resize(align4(v.len()), 0);
        v
    }

    fn msg(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&[0; 10]);
        v.extend_from_slice(body);
        v.resize(align4(v.len()), 0);
        v
    }

    fn addr_msg(ty: u16, family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![family, 24, 0, 0, 2, 0, 0, 0];
        for a in attrs {
            body.extend_from_slice(a);
        }
        msg(ty, &body)
    }

    fn link_msg(ty: u16, flags: u32, name: &str) -> Vec<u8> {
        let mut body = vec![0u8; IFINFOMSG_LEN];
        body[8..12].copy_from_slice(&flags.to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        body.extend_from_slice(&attr(IFLA_IFNAME, &n));
        msg(ty, &body)
    }

    #[test]
    fn parses_address_and_link_messages() {
        let vip: IpAddr = "192.0.2.97".parse().unwrap();
        let mut dgram = addr_msg(
            RTM_NEWADDR,
            2,
            &[
                attr(IFA_ADDRESS, &[192, 0, 2, 97]),
                attr(IFA_LOCAL, &[192, 0, 2, 97]),
            ],
        );
        // Another address: ignored.
        dgram.extend(addr_msg(
            RTM_DELADDR,
            2,
            &[attr(IFA_LOCAL, &[192, 0, 2, 1])],
        ));
        dgram.extend(addr_msg(
            RTM_DELADDR,
            2,
            &[attr(IFA_LOCAL, &[192, 0, 2, 97])],
        ));
        // Carrier lost on eth0, then back; lo is ignored.
        dgram.extend(link_msg(RTM_NEWLINK, IFF_UP, "eth0"));
        dgram.extend(link_msg(RTM_NEWLINK, IFF_UP | IFF_LOWER_UP, "lo"));
        dgram.extend(link_msg(RTM_NEWLINK, IFF_UP | IFF_LOWER_UP, "eth0"));
        dgram.extend(link_msg(RTM_DELLINK, IFF_UP | IFF_LOWER_UP, "eth0"));
        assert_eq!(
            parse_messages(&dgram, vip),
            vec![
                Change::Addr(true),
                Change::Addr(false),
                Change::Link(false),
                Change::Link(true),
                Change::Link(false)
            ]
        );
        let v6: IpAddr = "2001:db8::97".parse().unwrap();
        let IpAddr::V6(o) = v6 else { unreachable!() };
        let m = addr_msg(RTM_NEWADDR, 10, &[attr(IFA_ADDRESS, &o.octets())]);
        assert_eq!(parse_messages(&m, v6), vec![Change::Addr(true)]);
        assert_eq!(parse_messages(&m, vip), vec![]);
    }

    #[test]
    fn ignores_truncated_and_garbage() {
        let vip: IpAddr = "192.0.2.97".parse().unwrap();
        let m = addr_msg(RTM_NEWADDR, 2, &[attr(IFA_LOCAL, &[192, 0, 2, 97])]);
        for cut in 0..m.len() {
            // A cut message is dropped whole (its length runs past the datagram).
            assert_eq!(parse_messages(&m[..cut], vip), vec![], "cut at {cut}");
        }
        assert_eq!(parse_messages(&[0xff; 64], vip), vec![]);
        assert_eq!(parse_messages(&[], vip), vec![]);
    }

    #[test]
    fn records_only_changes_and_stops_at_the_cap() {
        let mut st = State {
            timeline: Timeline {
                host: "h1".into(),
                addr: "192.0.2.97".parse().unwrap(),
                since: 0.0,
                held_at_start: false,
                link_up_at_start: true,
                events: Vec::new(),
                lost: 0,
                error: None,
            },
            held: false,
            link_up: true,
        };
        st.apply(1.0, Change::Addr(true));
        st.apply(1.5, Change::Addr(true)); // a lifetime refresh: no change
        st.apply(2.0, Change::Link(true));
        st.apply(3.0, Change::Link(false));
        let kinds: Vec<WatchKind> = st.timeline.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![WatchKind::AddrAdded, WatchKind::LinkDown]);
        for k in 0..MAX_WATCH_EVENTS {
            st.apply(4.0 + k as f64, Change::Addr(k % 2 == 0));
        }
        assert_eq!(st.timeline.events.len(), MAX_WATCH_EVENTS);
        assert!(st.timeline.error.is_some());
    }

    #[test]
    fn link_flags() {
        assert!(link_flags_up(
            "2: eth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP"
        ));
        assert!(!link_flags_up(
            "2: eth0@if5: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN"
        ));
        assert!(!link_flags_up(
            "2: eth0@if5: <BROADCAST,MULTICAST> mtu 1500"
        ));
    }
}
