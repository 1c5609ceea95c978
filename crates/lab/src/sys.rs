//! The only unsafe code in the lab: thin wrappers over libc calls that std does not offer.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal number that interrupted the run, or 0.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Sends `sig` to `pid`. Callers make sure `pid` is a child of ours that has not been reaped, so
/// the pid cannot have been reused by an unrelated process.
pub fn kill(pid: u32, sig: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        // Never a process group or "every process": only one positive pid.
        return false;
    }
    // SAFETY: kill(2) with a positive pid and any signal number has no memory-safety effect.
    unsafe { libc::kill(pid, sig) == 0 }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: one atomic store, nothing else (no allocation, no locks, no cleanup).
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// Installs `on_signal` for SIGINT and SIGTERM, one-shot (SA_RESETHAND): a second Ctrl-C gets the
/// default action and kills the process at once.
pub fn install_handlers() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sa` is fully initialised (zeroed, then handler, mask and flags set) before it
        // is passed to sigaction; the handler only performs an atomic store, which is
        // async-signal-safe; the old-action pointer is null, which sigaction allows.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal recorded by the handler, if any.
pub fn interrupted_signal() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Runs `make` on a short-lived thread that first moves itself into the network namespace
/// `/run/netns/<netns>` (setns affects only the calling thread for network namespaces), so the
/// socket it creates belongs to that namespace for its whole life while the calling thread and the
/// rest of the process stay where they are.
fn socket_in(
    netns: &str,
    make: impl FnOnce() -> std::io::Result<std::net::UdpSocket> + Send,
) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(std::path::Path::new("/run/netns").join(netns))?;
    let ns_fd = ns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(|| -> std::io::Result<std::net::UdpSocket> {
            // SAFETY: `ns_fd` is an open namespace file kept alive by `ns` for this whole scope;
            // setns only changes this (scoped, about to exit) thread's network namespace.
            if unsafe { libc::setns(ns_fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            make()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("socket thread panicked")))
    })
}

/// Opens a raw ICMP (or ICMPv6) socket inside the network namespace `/run/netns/<netns>`.
///
/// (See [`socket_in`].) It is returned as a `UdpSocket` only for std's `send_to`/`recv_from`/
/// timeouts, which work unchanged on a raw socket.
pub fn raw_icmp_socket_in(netns: &str, v6: bool) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::{FromRawFd, OwnedFd};
    socket_in(netns, || {
        let (domain, proto) = if v6 {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP)
        };
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created, valid socket that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(std::net::UdpSocket::from(owned))
    })
}

/// Opens a NETLINK_ROUTE socket inside the network namespace `/run/netns/<netns>`, subscribed to
/// the multicast `groups` (e.g. `RTMGRP_LINK | RTMGRP_IPV4_IFADDR`), with a 1 MiB receive buffer.
///
/// (See [`socket_in`].) Returned as a `UdpSocket` only for std's `recv`/read timeouts, which work
/// unchanged on a netlink socket.
pub fn netlink_route_socket_in(netns: &str, groups: u32) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::{FromRawFd, OwnedFd};
    socket_in(netns, || {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created, valid socket that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let size: libc::c_int = 1 << 20;
        // SAFETY: setsockopt with a pointer to a live c_int and its exact size. Best effort:
        // SO_RCVBUFFORCE (CAP_NET_ADMIN) may be refused; the default buffer then applies.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        // SAFETY: sockaddr_nl is plain old data; zeroed is a valid value, then filled in.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = groups;
        // SAFETY: bind(2) with a pointer to a live sockaddr_nl and its exact size.
        let rc = unsafe {
            libc::bind(
                fd,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::net::UdpSocket::from(owned))
    })
}

/// Opens a raw IPv4 socket for VRRP (protocol 112) inside the network namespace
/// `/run/netns/<netns>`, with `IP_HDRINCL` (a send carries its own IPv4 header, source and TTL
/// included), joined to 224.0.0.18 on the interface that has `local`, which is also where its
/// multicast goes out. A read returns whole IPv4 packets (header included).
///
/// (See [`socket_in`].) Returned as a `UdpSocket` only for std's `send_to`/`recv_from`/timeouts.
pub fn raw_vrrp4_socket_in(
    netns: &str,
    local: std::net::Ipv4Addr,
) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::{FromRawFd, OwnedFd};
    socket_in(netns, || {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 112) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created, valid socket that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let set = |level: libc::c_int, opt: libc::c_int, val: *const libc::c_void, len: usize| {
            // SAFETY: setsockopt on our live `fd` with a pointer to a live value of `len` bytes.
            let rc = unsafe { libc::setsockopt(fd, level, opt, val, len as libc::socklen_t) };
            if rc != 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let on: libc::c_int = 1;
        set(
            libc::IPPROTO_IP,
            libc::IP_HDRINCL,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>(),
        )?;
        let local_addr = libc::in_addr {
            s_addr: u32::from(local).to_be(),
        };
        let mreq = libc::ip_mreq {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::new(224, 0, 0, 18)).to_be(),
            },
            imr_interface: local_addr,
        };
        set(
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            (&mreq as *const libc::ip_mreq).cast(),
            std::mem::size_of::<libc::ip_mreq>(),
        )?;
        set(
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&local_addr as *const libc::in_addr).cast(),
            std::mem::size_of::<libc::in_addr>(),
        )?;
        Ok(std::net::UdpSocket::from(owned))
    })
}
