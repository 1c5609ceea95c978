//! What the protocol loop sleeps on: its own epoll with a timerfd for the next deadline, the VRRP
//! receive sockets, and a doorbell (eventfd) the tasks around the loop ring after queueing an input.
//!
//! The loop runs on its own thread, not as a tokio task. A master at 10 ms adverts wakes 100 times a
//! second, and each wakeup through a tokio runtime (its drivers, the select over every input) cost more
//! CPU than the advert it sent. Here a wakeup is one `epoll_wait`, the advert's `send`, and one
//! `timerfd_settime`: the same work keepalived's scheduler does. Netlink, control, checks, hooks and
//! the ARP/ND watch stay on the tokio runtime (another thread); they reach the loop through a channel
//! and [`Bell::ring`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::{clock_gettime, ClockId as Clock};

const TIMER: u64 = u64::MAX;
const BELL: u64 = u64::MAX - 1;

/// Wakes the loop from another thread. Rings coalesce: one wakeup drains everything queued before it.
#[derive(Debug)]
pub struct Bell(EventFd);

impl Bell {
    pub fn ring(&self) {
        // Only fails when the counter would overflow, and then the loop is due to wake anyway.
        let _ = self.0.write(1);
    }
}

/// Why [`Wakeup::wait`] returned. Several at once is normal.
#[derive(Debug, Default)]
pub struct Woken {
    /// The deadline passed.
    pub timer: bool,
    /// Someone rang the bell: drain the input channel.
    pub bell: bool,
    /// Tokens of the sockets that are readable (see [`Wakeup::watch`]).
    pub sockets: Vec<u64>,
}

pub struct Wakeup {
    epoll: Epoll,
    timer: TimerFd,
    armed: Option<Instant>,
    /// The same moment as an `Instant` and as CLOCK_MONOTONIC (which `Instant` is on Linux): arming
    /// converts by offset, without reading the clock.
    epoch: (Instant, Duration),
    bell: Arc<Bell>,
    events: Vec<EpollEvent>,
}

impl Wakeup {
    pub fn new() -> io::Result<Wakeup> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // Edge-triggered: every expiry is an edge, and re-arming resets the expiry count, so the
        // timer is never read (one syscall less per wakeup).
        epoll.add(
            timer.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, TIMER),
        )?;
        let bell = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        epoll.add(bell.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, BELL))?;
        // The `Instant` first: the offset can only make the timer fire late (by nanoseconds), never early.
        let at = Instant::now();
        let mono = Duration::from(clock_gettime(Clock::CLOCK_MONOTONIC)?);
        Ok(Wakeup {
            epoll,
            timer,
            armed: None,
            epoch: (at, mono),
            bell: Arc::new(Bell(bell)),
            events: vec![EpollEvent::empty(); 64],
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
        self.arm(deadline)?;
        let n = loop {
            match self.epoll.wait(&mut self.events, EpollTimeout::NONE) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut woken = Woken::default();
        for ev in &self.events[..n] {
            match ev.data() {
                TIMER => woken.timer = true,
                BELL => woken.bell = true,
                token => woken.sockets.push(token),
            }
        }
        if woken.bell {
            // Reset the counter before the caller drains: a ring after this wakes the next wait.
            let _ = self.bell.0.read();
        }
        // An expiry of a deadline since replaced can still be queued in epoll: go by the clock.
        if woken.timer && self.armed.is_some_and(|at| at > Instant::now()) {
            woken.timer = false;
        } else if woken.timer {
            self.armed = None;
        }
        Ok(woken)
    }

    /// Arm the timer for `at` (std's `Instant` is CLOCK_MONOTONIC on Linux). Re-arming for the same
    /// instant costs nothing.
    fn arm(&mut self, at: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // An absolute expiry of zero would disarm the timer; the epoch is never zero on a running system.
        let target = self.epoch.1 + at.saturating_duration_since(self.epoch.0);
        self.timer.set(
            Expiration::OneShot(TimeSpec::from_duration(target)),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )?;
        self.armed = Some(at);
        Ok(())
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
        for n in [5u64, 1, 20, 0] {
            let start = Instant::now();
            let mut woken = w.wait(start + ms(n)).unwrap();
            // A stale expiry may come first; it is reported as nothing.
            while !woken.timer {
                woken = w.wait(start + ms(n)).unwrap();
            }
            assert!(start.elapsed() >= ms(n), "woke early for {n} ms");
        }
    }

    #[test]
    fn an_expiry_from_a_replaced_deadline_is_not_taken_for_the_new_one() {
        let mut w = Wakeup::new().unwrap();
        w.arm(Instant::now() + ms(2)).unwrap();
        std::thread::sleep(ms(10));
        let start = Instant::now();
        loop {
            let woken = w.wait(start + ms(40)).unwrap();
            if woken.timer {
                break;
            }
        }
        assert!(start.elapsed() >= ms(40), "woke at the stale expiry");
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
