//! What the protocol loop sleeps on: its own epoll with the VRRP receive sockets and a doorbell
//! (eventfd) the tasks around the loop ring after queueing an input, waited on with the next deadline
//! as the timeout.
//!
//! The loop runs on its own thread, not as a tokio task. A master at 10 ms adverts wakes 100 times a
//! second, and each wakeup through a tokio runtime (its drivers, the select over every input) cost more
//! CPU than the advert it sent. Here a wakeup is one `epoll_pwait2` (a nanosecond timeout, Linux 5.11)
//! and the advert's `send`: two syscalls, where keepalived's scheduler makes four (`epoll_wait`, a
//! timerfd read and re-arm, the send). Netlink, control, checks, hooks and the ARP/ND watch stay on the
//! tokio runtime (another thread); they reach the loop through a channel and [`Bell::ring`].
//!
//! Precision: the kernel may end a sleep late by its timer slack, the larger of 50 µs and 0.1% of the
//! timeout, which for a 3.6 s master-down would be 3.6 ms. A long sleep therefore stops short by twice
//! that and finishes with a second, short one: every deadline is met within about 50 µs, for one
//! extra wakeup per long sleep. Before Linux 5.11 it falls back to `epoll_wait`'s milliseconds,
//! rounded up (deadlines then up to 1 ms late).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

const BELL: u64 = u64::MAX;

/// Sleeps longer than this stop short of the deadline by twice the kernel's slack and finish with a
/// short sleep (see the module docs). At or below it the slack is the kernel's 50 µs floor.
const LONG_SLEEP: Duration = Duration::from_millis(50);

/// Wakes the loop from another thread. Rings coalesce: one wakeup drains everything queued before it.
#[derive(Debug)]
pub struct Bell(EventFd);

impl Bell {
    pub fn ring(&self) {
        // Only fails when the counter would overflow, and then the loop is due to wake anyway.
        let _ = self.0.write(1);
    }
}

/// Why [`Wakeup::wait`] returned, and when. Several reasons at once is normal.
#[derive(Debug)]
pub struct Woken {
    /// The clock, read once after waking.
    pub now: Instant,
    /// The deadline passed.
    pub timer: bool,
    /// Someone rang the bell: drain the input channel.
    pub bell: bool,
    /// Tokens of the sockets that are readable (see [`Wakeup::watch`]).
    pub sockets: Vec<u64>,
}

pub struct Wakeup {
    epoll: Epoll,
    bell: Arc<Bell>,
    events: Vec<libc::epoll_event>,
    /// False once the kernel said it has no `epoll_pwait2`: millisecond timeouts from then on.
    nanosecond_timeouts: bool,
}

impl Wakeup {
    pub fn new() -> io::Result<Wakeup> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let bell = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        epoll.add(bell.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, BELL))?;
        Ok(Wakeup {
            epoll,
            bell: Arc::new(Bell(bell)),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 64],
            nanosecond_timeouts: true,
        })
    }

    /// The doorbell, for the tasks that feed the loop.
    pub fn bell(&self) -> Arc<Bell> {
        self.bell.clone()
    }

    /// Wake for `fd` while it is readable (level-triggered), reported as `token`. The caller keeps the
    /// descriptor open until [`Wakeup::unwatch`].
    pub fn watch(&self, fd: RawFd, token: u64) -> io::Result<()> {
        debug_assert!(token < BELL);
        // SAFETY: only used for the duration of the call; the caller keeps `fd` open.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        self.epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(io::Error::from)
    }

    /// Stop watching `fd` (before it is closed).
    pub fn unwatch(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: as in `watch`.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        self.epoll.delete(fd).map_err(io::Error::from)
    }

    /// Sleep until `deadline`, a watched socket is readable or the bell rings.
    pub fn wait(&mut self, deadline: Instant) -> io::Result<Woken> {
        // Bounded: each round sleeps at least until the short final stretch, which ends the wait.
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(self.woken(0, now, deadline));
            }
            let mut timeout = deadline - now;
            if timeout > LONG_SLEEP {
                timeout -= (timeout / 500).max(Duration::from_micros(100));
            }
            let n = self.epoll_wait(timeout)?;
            if n > 0 {
                return Ok(self.woken(n, Instant::now(), deadline));
            }
        }
    }

    fn woken(&mut self, n: usize, now: Instant, deadline: Instant) -> Woken {
        let mut woken = Woken {
            now,
            timer: now >= deadline,
            bell: false,
            sockets: Vec::new(),
        };
        for ev in &self.events[..n] {
            match ev.u64 {
                BELL => woken.bell = true,
                token => woken.sockets.push(token),
            }
        }
        if woken.bell {
            // Reset the counter before the caller drains: a ring after this wakes the next wait.
            let _ = self.bell.0.read();
        }
        woken
    }

    /// One `epoll_pwait2` (or `epoll_wait` before Linux 5.11); an interrupted wait counts as a timeout.
    fn epoll_wait(&mut self, timeout: Duration) -> io::Result<usize> {
        let fd = self.epoll.0.as_raw_fd();
        let max = self.events.len() as libc::c_int;
        let events = self.events.as_mut_ptr();
        let n = if self.nanosecond_timeouts {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `events` holds `max` entries; the timeout lives across the call; no signal mask.
            // Called as a syscall so the binary does not need glibc 2.35.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    fd,
                    events,
                    max,
                    &ts as *const libc::timespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.nanosecond_timeouts = false;
                return self.epoll_wait(timeout);
            }
            n as isize
        } else {
            // Rounded up: a millisecond late rather than a wakeup early.
            let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: as above.
            unsafe { libc::epoll_wait(fd, events, max, ms) as isize }
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
            e => Err(e),
        }
    }
}

impl AsRawFd for Bell {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn wakes_at_each_deadline_and_not_before() {
        let mut w = Wakeup::new().unwrap();
        // 120 ms is a long sleep: stopped short, then finished with a short one.
        for n in [5u64, 1, 20, 0, 120] {
            let start = Instant::now();
            let woken = w.wait(start + ms(n)).unwrap();
            assert!(woken.timer && !woken.bell && woken.sockets.is_empty());
            assert!(woken.now >= start + ms(n), "woke early for {n} ms");
            assert!(start.elapsed() >= ms(n));
        }
    }

    #[test]
    fn the_millisecond_fallback_never_wakes_early_either() {
        let mut w = Wakeup::new().unwrap();
        w.nanosecond_timeouts = false;
        for n in [3u64, 0, 70] {
            let start = Instant::now();
            // A deadline between two milliseconds: rounded up, not down.
            let deadline = start + ms(n) + Duration::from_micros(300);
            let woken = w.wait(deadline).unwrap();
            assert!(
                woken.timer && woken.now >= deadline,
                "woke early for {n} ms"
            );
        }
    }

    #[test]
    fn the_bell_wakes_it_from_another_thread_and_is_reset() {
        let mut w = Wakeup::new().unwrap();
        let bell = w.bell();
        let t = std::thread::spawn(move || {
            std::thread::sleep(ms(20));
            bell.ring();
            bell.ring();
        });
        let start = Instant::now();
        let woken = w.wait(start + Duration::from_secs(5)).unwrap();
        assert!(woken.bell && !woken.timer);
        assert!(start.elapsed() < Duration::from_secs(4));
        t.join().unwrap();
        // Both rings were taken by that one wakeup: the next wait sleeps to its deadline.
        let woken = w.wait(Instant::now() + ms(30)).unwrap();
        assert!(woken.timer && !woken.bell);
    }

    #[test]
    fn a_readable_socket_is_reported_by_its_token_until_drained() {
        let mut w = Wakeup::new().unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        w.watch(rx.as_raw_fd(), 7).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        let woken = w.wait(Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(woken.sockets, vec![7]);
        // Level-triggered: still readable, still reported.
        let woken = w.wait(Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(woken.sockets, vec![7]);
        let mut b = [0u8; 4];
        rx.recv(&mut b).unwrap();
        let woken = w.wait(Instant::now() + ms(10)).unwrap();
        assert!(woken.sockets.is_empty() && woken.timer);
        w.unwatch(rx.as_raw_fd()).unwrap();
    }
}
