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
//! Precision: the kernel may end a sleep late by its timer slack, the larger of the thread's
//! `timer_slack_ns` (50 µs unless changed) and 0.1% of the timeout (0.5% for a niced thread, none for a
//! real-time one), which for a 3.6 s master-down would be 3.6 ms. The loop therefore asks for the
//! timeout less that slack: the kernel's timer then fires at the deadline, and one wakeup meets it
//! within a few µs. Another interrupt inside the slack window may end the sleep early; the rest is
//! slept again, so no deadline is met early. Deadlines of several instances less than 50 µs apart are
//! served by one wakeup at the last of them ([`coalesced`]), as the kernel's slack used to serve
//! them. Before Linux 5.11 it falls back to `epoll_wait`'s milliseconds, rounded up (deadlines then up
//! to 1 ms late).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

const BELL: u64 = u64::MAX;

/// The kernel's cap on a sleep's slack (`MAX_SLACK` in fs/select.c).
const MAX_SLACK: Duration = Duration::from_millis(100);

/// How late the kernel may end a sleep on the thread that measured it (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slack {
    /// The thread's `timer_slack_ns`: the least slack of any sleep.
    floor: Duration,
    /// The slack is the timeout divided by this (1000; 200 for a niced thread).
    divisor: u32,
    /// A real-time thread sleeps without slack.
    realtime: bool,
}

impl Slack {
    /// The calling thread's, as the kernel will compute it for this thread's sleeps.
    fn of_this_thread() -> Slack {
        // SAFETY: plain queries about the calling thread; no pointers.
        let (slack_ns, nice, policy) = unsafe {
            (
                libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0),
                libc::getpriority(libc::PRIO_PROCESS, 0),
                libc::sched_getscheduler(0),
            )
        };
        Slack {
            floor: Duration::from_nanos(u64::try_from(slack_ns).unwrap_or(50_000)),
            divisor: if nice > 0 { 200 } else { 1000 },
            realtime: matches!(
                policy & !libc::SCHED_RESET_ON_FORK,
                libc::SCHED_FIFO | libc::SCHED_RR | libc::SCHED_DEADLINE
            ),
        }
    }

    /// The slack of a sleep of `t` (fs/select.c, `select_estimate_accuracy`).
    fn of(&self, t: Duration) -> Duration {
        if self.realtime {
            return Duration::ZERO;
        }
        (t / self.divisor).min(MAX_SLACK).max(self.floor)
    }

    /// What to ask the kernel for so that a sleep of `t` ends at `t`, not up to its slack later.
    ///
    /// The slack of the shortened sleep is a little smaller than `t`'s; a second step makes the sum
    /// land at `t` or a few ns after it (never before). A sleep no longer than the slack floor is
    /// asked for as it is: it may end up to the floor late, like any short sleep.
    fn ask(&self, t: Duration) -> Duration {
        if t <= self.of(Duration::ZERO) {
            return t;
        }
        t.saturating_sub(self.of(t.saturating_sub(self.of(t))))
    }
}

/// How late [`coalesced`] lets a deadline be so that one wakeup serves several: the kernel's default
/// timer slack, which used to do this before sleeps were asked for less by their slack.
pub const COALESCE: Duration = Duration::from_micros(50);

/// When to wake for `deadlines`: the earliest, moved later onto the last other deadline within `window`
/// of it, so that one wakeup serves them all (none more than `window` late). With many instances this
/// saves wakeups; with one it changes nothing.
pub fn coalesced(
    deadlines: impl Iterator<Item = Instant> + Clone,
    window: Duration,
) -> Option<Instant> {
    let first = deadlines.clone().min()?;
    deadlines.filter(|&d| d <= first + window).max()
}

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
    /// Measured on the first wait, by the thread that waits.
    slack: Option<Slack>,
    /// Sleeps so far, each one `epoll_pwait2`.
    #[cfg(test)]
    sleeps: usize,
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
            slack: None,
            #[cfg(test)]
            sleeps: 0,
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
        let slack = *self.slack.get_or_insert_with(Slack::of_this_thread);
        // Bounded: a sleep ends at its deadline unless another interrupt ends it inside its slack
        // window, and the rest is a shorter sleep with a smaller window.
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(self.woken(0, now, deadline));
            }
            #[cfg(test)]
            {
                self.sleeps += 1;
            }
            let n = self.epoll_wait(slack.ask(deadline - now))?;
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
        for n in [5u64, 1, 20, 0, 120] {
            let start = Instant::now();
            let woken = w.wait(start + ms(n)).unwrap();
            assert!(woken.timer && !woken.bell && woken.sockets.is_empty());
            assert!(woken.now >= start + ms(n), "woke early for {n} ms");
            assert!(start.elapsed() >= ms(n));
        }
    }

    #[test]
    fn nearby_deadlines_share_a_wakeup() {
        let t = Instant::now();
        let us = |n| t + Duration::from_micros(n);
        assert_eq!(coalesced([].into_iter(), COALESCE), None);
        assert_eq!(coalesced([us(300)].into_iter(), COALESCE), Some(us(300)));
        // 120 and 140 are within 50 µs of 100 and wait for 140; 151 does not.
        let d = [us(151), us(140), us(100), us(120), us(900)];
        assert_eq!(coalesced(d.into_iter(), COALESCE), Some(us(140)));
        assert_eq!(coalesced(d.into_iter(), Duration::ZERO), Some(us(100)));
    }

    #[test]
    fn a_sleep_asks_for_less_by_the_slack_the_kernel_adds() {
        let us = Duration::from_micros;
        let configs = [
            (us(50), 1000, false),
            (us(1), 1000, false),
            (ms(2), 200, false),
            (us(50), 1000, true),
        ];
        for (floor, divisor, realtime) in configs {
            let s = Slack {
                floor,
                divisor,
                realtime,
            };
            for t in [
                us(10),
                us(50),
                us(51),
                ms(10),
                ms(100),
                ms(3600),
                ms(200_000),
            ] {
                let ask = s.ask(t);
                if realtime || t <= floor {
                    assert_eq!(ask, t, "{s:?} {t:?}");
                    continue;
                }
                // The kernel's timer fires at ask + slack(ask): at t, never before, at most 5 µs after.
                let fires = ask + s.of(ask);
                assert!(
                    fires >= t && fires <= t + us(5),
                    "{s:?} {t:?}: fires at {fires:?}"
                );
            }
        }
        // The kernel's figures: 0.1% of the timeout, at least the floor, at most 100 ms.
        let s = Slack {
            floor: us(50),
            divisor: 1000,
            realtime: false,
        };
        assert_eq!(s.of(ms(10)), us(50));
        assert_eq!(s.of(ms(3600)), us(3600));
        assert_eq!(s.of(ms(500_000)), ms(100));
    }

    #[test]
    fn a_long_sleep_is_one_wakeup() {
        let mut w = Wakeup::new().unwrap();
        let rounds = 4;
        for _ in 0..rounds {
            let deadline = Instant::now() + ms(150);
            let woken = w.wait(deadline).unwrap();
            assert!(woken.timer && woken.now >= deadline);
        }
        // Another interrupt inside a sleep's slack window (150 µs here) ends it early and costs a
        // second, short sleep: rare, but a loaded machine may see one.
        assert!(w.sleeps <= rounds + 1, "{} sleeps for {rounds}", w.sleeps);
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
        let other = bell.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(ms(20));
            other.ring();
        });
        let start = Instant::now();
        let woken = w.wait(start + Duration::from_secs(5)).unwrap();
        assert!(woken.bell && !woken.timer);
        assert!(start.elapsed() < Duration::from_secs(4));
        t.join().unwrap();
        // Rings that come before a wait are all taken by its one wakeup (rung here, not from the
        // thread: under load the thread's second ring could land after the first wakeup).
        bell.ring();
        bell.ring();
        let woken = w.wait(Instant::now() + Duration::from_secs(5)).unwrap();
        assert!(woken.bell && !woken.timer);
        // ... so the next wait sleeps to its deadline.
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
