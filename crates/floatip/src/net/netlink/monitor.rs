//! The link/address event monitor: a plain `NETLINK_ROUTE` socket subscribed to link and address
//! changes, read by a task of its own, its notifications parsed by hand into [`NetEvent`]s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{anyhow, Context};
use tokio::sync::mpsc;

use super::{bound_route_socket, recv_fd, MonitorFilter};

// From linux/rtnetlink.h, linux/netlink.h, linux/if.h and linux/if_addr.h.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

pub(super) const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
pub(super) const RTM_NEWADDR: u16 = 20;
pub(super) const RTM_DELADDR: u16 = 21;
const NLMSG_HDRLEN: usize = 16;
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
pub(super) const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFINFOMSG_LEN: usize = 16;

/// A change reported by [`monitor`].
///
/// `Link` events are sent for every `RTM_NEWLINK` the kernel emits, which includes notifications that
/// change nothing the daemon cares about (statistics, MTU, ...): the same `up` value may repeat, so
/// consumers should compare with the state they hold. A deleted link is reported as [`NetEvent::LinkRemoved`]:
/// an interface created again under the same name (networkd restart, hot-plug) gets a new index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    Link {
        index: u32,
        /// The interface's name (empty if the kernel did not say).
        name: String,
        up: bool,
    },
    /// The interface is gone (`RTM_DELLINK`).
    LinkRemoved { index: u32, name: String },
    AddressAdded {
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    },
    AddressRemoved {
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    },
}

/// Starts watching link and address changes in the calling thread's network namespace.
///
/// Returns an unbounded channel fed by a task spawned on the current tokio runtime; the task ends
/// when the receiver is dropped (at the next event) or the socket fails. If the kernel reports that the
/// socket overran (`ENOBUFS`: events were lost), a warning is logged and watching continues: consumers
/// should not rely on the monitor alone for state they must never miss (refresh it periodically).
pub fn monitor() -> anyhow::Result<mpsc::UnboundedReceiver<NetEvent>> {
    monitor_filtered(None).map(|(rx, _)| rx)
}

/// [`monitor`], with a socket filter that drops the notifications the caller's own requests cause:
/// those from netlink port `ignore` from the start (the [`Refresher`](super::Refresher)'s), and more
/// through the returned [`MonitorFilter`].
pub fn monitor_filtered(
    ignore: Option<u32>,
) -> anyhow::Result<(mpsc::UnboundedReceiver<NetEvent>, MonitorFilter)> {
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|_| anyhow!("netlink::monitor must be called inside a tokio runtime"))?;
    let fd = open_monitor_socket().context("cannot open the netlink event socket")?;
    let filter = MonitorFilter::new(
        fd.try_clone()
            .context("cannot duplicate the netlink event socket")?,
        ignore,
    );
    if ignore.is_some() {
        filter
            .attach(&[])
            .context("cannot filter the netlink event socket")?;
    }
    let afd = {
        let _guard = rt.enter();
        crate::net::vrrp_socket::async_fd(fd).context("cannot register the netlink event socket")?
    };
    let (tx, rx) = mpsc::unbounded_channel();
    rt.spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match afd.readable().await {
                Ok(mut guard) => match guard.try_io(|fd| recv_fd(fd.get_ref(), &mut buf)) {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        tracing::warn!(
                            "netlink event socket overran: some link/address events were lost"
                        );
                        continue;
                    }
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Ok(Err(e)) => {
                        tracing::error!("netlink event socket failed: {e}");
                        return;
                    }
                    Err(_would_block) => continue,
                },
                Err(e) => {
                    tracing::error!("netlink event socket failed: {e}");
                    return;
                }
            };
            for ev in parse_events(&buf[..n]) {
                if tx.send(ev).is_err() {
                    return;
                }
            }
        }
    });
    Ok((rx, filter))
}

fn open_monitor_socket() -> std::io::Result<OwnedFd> {
    let (fd, _) = bound_route_socket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)?;
    let size: libc::c_int = 1 << 20;
    // SAFETY: SO_RCVBUF takes a c_int; pointer and length describe `size`. Failure is harmless.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(fd)
}

fn u16_ne(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}
fn u32_ne(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// The `IFLA_IFNAME` attribute among a link message's attributes (empty if absent or malformed).
fn link_name(mut attrs: &[u8]) -> String {
    while attrs.len() >= 4 {
        let alen = u16_ne(&attrs[0..2]) as usize;
        let aty = u16_ne(&attrs[2..4]) & 0x3fff;
        if alen < 4 || alen > attrs.len() {
            break;
        }
        if aty == IFLA_IFNAME {
            let val = &attrs[4..alen];
            let end = val.iter().position(|&b| b == 0).unwrap_or(val.len());
            return String::from_utf8_lossy(&val[..end]).into_owned();
        }
        let step = (alen + 3) & !3;
        if step >= attrs.len() {
            break;
        }
        attrs = &attrs[step..];
    }
    String::new()
}

/// Parses one datagram of rtnetlink notifications into events (unknown or malformed parts are skipped).
pub fn parse_events(mut buf: &[u8]) -> Vec<NetEvent> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_ne(&buf[0..4]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let ty = u16_ne(&buf[4..6]);
        let payload = &buf[NLMSG_HDRLEN..len];
        match ty {
            RTM_NEWLINK | RTM_DELLINK if payload.len() >= IFINFOMSG_LEN => {
                let index = u32_ne(&payload[4..8]);
                let flags = u32_ne(&payload[8..12]);
                let name = link_name(&payload[IFINFOMSG_LEN..]);
                if ty == RTM_DELLINK {
                    out.push(NetEvent::LinkRemoved { index, name });
                } else {
                    let up = flags & IFF_UP != 0 && flags & IFF_RUNNING != 0;
                    out.push(NetEvent::Link { index, name, up });
                }
            }
            RTM_NEWADDR | RTM_DELADDR if payload.len() >= 8 => {
                let family = payload[0] as i32;
                let prefix_len = payload[1];
                let index = u32_ne(&payload[4..8]);
                let mut local = None;
                let mut address = None;
                let mut attrs = &payload[8..];
                while attrs.len() >= 4 {
                    let alen = u16_ne(&attrs[0..2]) as usize;
                    let aty = u16_ne(&attrs[2..4]) & 0x3fff;
                    if alen < 4 || alen > attrs.len() {
                        break;
                    }
                    let val = &attrs[4..alen];
                    let ip = match (family, val.len()) {
                        (libc::AF_INET, 4) => {
                            Some(IpAddr::V4(Ipv4Addr::new(val[0], val[1], val[2], val[3])))
                        }
                        (libc::AF_INET6, 16) => {
                            let mut o = [0u8; 16];
                            o.copy_from_slice(val);
                            Some(IpAddr::V6(Ipv6Addr::from(o)))
                        }
                        _ => None,
                    };
                    match aty {
                        IFA_LOCAL => local = ip.or(local),
                        IFA_ADDRESS => address = ip.or(address),
                        _ => {}
                    }
                    let step = (alen + 3) & !3;
                    attrs = if step >= attrs.len() {
                        &[]
                    } else {
                        &attrs[step..]
                    };
                }
                if let Some(addr) = local.or(address) {
                    out.push(if ty == RTM_NEWADDR {
                        NetEvent::AddressAdded {
                            index,
                            addr,
                            prefix_len,
                        }
                    } else {
                        NetEvent::AddressRemoved {
                            index,
                            addr,
                            prefix_len,
                        }
                    });
                }
            }
            _ => {}
        }
        let step = (len + 3) & !3;
        if step >= buf.len() {
            break;
        }
        buf = &buf[step..];
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::net::netlink) fn nlmsg(ty: u16, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&[0u8; 8]);
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    pub(in crate::net::netlink) fn attr(ty: u16, val: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(val);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn parses_link_and_address_events() {
        let mut link = vec![0u8; 16];
        link[4..8].copy_from_slice(&7u32.to_ne_bytes());
        link[8..12].copy_from_slice(&(IFF_UP | IFF_RUNNING).to_ne_bytes());
        let mut link_down = link.clone();
        link_down[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
        link.extend(attr(4, &1500u32.to_ne_bytes()));
        link.extend(attr(IFLA_IFNAME, b"eth1\0"));

        let mut addr4 = vec![libc::AF_INET as u8, 24, 0, 0];
        addr4.extend_from_slice(&3u32.to_ne_bytes());
        addr4.extend(attr(IFA_ADDRESS, &[192, 0, 2, 9]));
        addr4.extend(attr(IFA_LOCAL, &[192, 0, 2, 7]));
        let v6: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let mut addr6 = vec![libc::AF_INET6 as u8, 64, 0, 0];
        addr6.extend_from_slice(&3u32.to_ne_bytes());
        addr6.extend(attr(IFA_ADDRESS, &v6.octets()));

        let mut buf = nlmsg(RTM_NEWLINK, &link);
        buf.extend(nlmsg(RTM_NEWLINK, &link_down));
        buf.extend(nlmsg(RTM_NEWADDR, &addr4));
        buf.extend(nlmsg(RTM_DELADDR, &addr6));
        buf.extend(nlmsg(RTM_DELLINK, &link));
        assert_eq!(
            parse_events(&buf),
            vec![
                NetEvent::Link {
                    index: 7,
                    name: "eth1".into(),
                    up: true
                },
                NetEvent::Link {
                    index: 7,
                    name: String::new(),
                    up: false
                },
                NetEvent::AddressAdded {
                    index: 3,
                    addr: "192.0.2.7".parse().unwrap(),
                    prefix_len: 24
                },
                NetEvent::AddressRemoved {
                    index: 3,
                    addr: v6.into(),
                    prefix_len: 64
                },
                NetEvent::LinkRemoved {
                    index: 7,
                    name: "eth1".into()
                },
            ]
        );
        // Truncated input never panics.
        for cut in 0..buf.len() {
            let _ = parse_events(&buf[..cut]);
        }
    }
}
