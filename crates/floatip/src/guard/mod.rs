//! The guard: a separate process that removes the VIPs the daemon holds the moment the daemon dies
//! (kill -9, a crash) or stops advancing (SIGSTOP, a hung loop, a paused VM).
//!
//! A VIP's kernel lifetime is whole seconds, while a backup at sub-second adverts claims after the
//! master-down interval (0.35 s at 100 ms adverts): without the guard a killed or frozen master's VIP
//! and the backup's overlap. A keepalived backup knows nothing of floatip, so the old owner itself has
//! to let go, and a process that is dead or stopped cannot: its guard does.
//!
//! ```text
//!   floatip run (the daemon)                         floatip-guard (forked before any thread)
//!   Guard::set_held ──> held table (double-buffered, ─┐
//!                       seqlock per buffer)           ├─ shared memory (MAP_SHARED, anonymous)
//!   Guard::alive_until ─> deadline (atomic store) ────┘     read by the guard's loop
//!   write end of a pipe ─────────────────────────────────> read end: EOF = the daemon is gone
//! ```
//! The guard sleeps (ppoll on the pipe) until the daemon's promised deadline. A deadline that passes
//! without the daemon moving it: every held VIP is removed (RTM_DELADDR), once, with a log line
//! saying why; the guard keeps watching, and a resumed daemon's next promise arms it again. EOF on
//! the pipe (the daemon exited, however it died): every VIP still held is removed and the guard exits.
//! A daemon that stopped cleanly held nothing by then, so the guard removes nothing.
//!
//! The daemon's side costs no system call in the loop: [`Guard::alive_until`] is two atomic stores
//! and a load; it writes a byte to the pipe only when the guard sleeps past the new deadline (after
//! it fired, or when a first VIP is claimed).

mod shm;

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tracing::{debug, error, warn};

use shm::{mono_ns, Clock, Region};

/// One VIP as the kernel knows it: interface index, address, prefix length.
pub type Vip = (u32, IpAddr, u8);

/// How many VIPs the guard can watch; more is refused with a warning (the rest keep their lifetime).
pub const MAX_HELD: usize = 1024;

/// The process name `ps` and `top` show for the guard.
const GUARD_NAME: &[u8] = b"floatip-guard\0";

/// The daemon's handle on its guard. Cheap to use from the protocol loop.
pub struct Guard {
    region: Arc<Region>,
    /// The write end of the pipe: closed when the daemon exits, however it exits.
    wake: OwnedFd,
    clock: Clock,
    /// One writer of the held table at a time.
    writer: Mutex<()>,
    /// The guard process is gone (a write to the pipe failed with EPIPE); said once.
    gone: AtomicBool,
    pid: u32,
}

/// The guard's side before it runs: the shared memory and the read end of the pipe.
pub struct Watch {
    region: Arc<Region>,
    pipe: OwnedFd,
}

impl Guard {
    /// Forks the guard process. Must be called before any thread exists (before the tokio runtime):
    /// a fork copies only the calling thread, and a lock another thread held stays locked in the child
    /// for good. Refuses (an error) when the process has more than one thread.
    ///
    /// `init_logging` sets up logging in the guard (call it before the daemon sets up its own, so
    /// that the guard has its own connection to the journal, not a copy of the daemon's).
    pub fn start(init_logging: impl FnOnce()) -> Result<Guard> {
        let threads = std::fs::read_dir("/proc/self/task")
            .context("cannot count this process's threads (/proc/self/task)")?
            .count();
        if threads != 1 {
            bail!(
                "the guard must be started before any thread exists, and this process has {threads} \
                 threads (a fork copies only the calling thread)"
            );
        }
        let (mut guard, watch) = channel()?;
        // SAFETY: the process has one thread (checked above), so the child is a full copy of it and
        // may allocate, take locks and run any code; it never returns from `child_main`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("cannot fork the guard process");
        }
        if pid == 0 {
            // The guard: the write end must go, or the daemon's death would never show as EOF.
            drop(guard);
            child_main(watch, init_logging);
        }
        drop(watch);
        guard.pid = pid as u32;
        Ok(guard)
    }

    /// The guard process's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The VIPs the daemon holds now; call when that changes: before adding an address to the kernel
    /// (so that a crash in between leaves nothing behind) and after removing one.
    pub fn set_held(&self, held: &[Vip]) {
        let _one = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() > MAX_HELD {
            warn!(
                "the guard watches {MAX_HELD} of the {} VIPs held; the others rely on their kernel lifetime",
                held.len()
            );
        }
        self.region.held.write(held);
    }

    /// The daemon promises to call again before `until`; if it does not, the guard removes every held
    /// VIP (and says so in the log). `None`: no promise (nothing held that needs one). `now` is the
    /// loop's idea of the present, for the guard's log. Costs no system call (atomic stores into the
    /// shared memory) unless the guard sleeps past `until`.
    pub fn alive_until(&self, now: Instant, until: Option<Instant>) {
        let s = &self.region.state;
        s.checkin.store(self.clock.ns(now), Ordering::Relaxed);
        let deadline = until.map_or(0, |u| self.clock.ns(u).max(1));
        s.deadline.store(deadline, Ordering::SeqCst);
        if deadline == 0 {
            return;
        }
        let asleep = s.asleep_until.load(Ordering::SeqCst);
        if asleep > deadline
            && s.asleep_until
                .compare_exchange(asleep, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.ring();
        }
    }

    /// How many times the guard has taken VIPs away (a deadline missed): a daemon that resumes can
    /// compare this with the last value it saw to learn that its VIPs are gone.
    pub fn removals(&self) -> u64 {
        self.region.state.removals.load(Ordering::Acquire)
    }

    fn ring(&self) {
        // SAFETY: one byte from a valid buffer to a descriptor this handle owns.
        let n = unsafe { libc::write(self.wake.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            // A full pipe wakes the guard as well as a byte would.
            if err.raw_os_error() == Some(libc::EPIPE) && !self.gone.swap(true, Ordering::Relaxed) {
                error!("the guard process has exited: a killed or stopped daemon's VIPs now last until their kernel lifetime ends");
            }
        }
    }
}

/// A guard handle and its guard side, connected, without a process: [`Guard::start`] forks between
/// the two; tests run [`run_guard`] on a thread.
pub fn channel() -> Result<(Guard, Watch)> {
    let region = Arc::new(Region::new().context("cannot map the guard's shared memory")?);
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is valid for two descriptors; both are owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create the guard's pipe");
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let guard = Guard {
        region: region.clone(),
        wake: write,
        clock: Clock::new(),
        writer: Mutex::new(()),
        gone: AtomicBool::new(false),
        pid: 0,
    };
    Ok((guard, Watch { region, pipe: read }))
}

/// The guard's loop: sleep until the daemon's deadline or a byte/EOF on the pipe; remove the held
/// VIPs with `remove` when a deadline passes (once per deadline) and on EOF, then return. `remove`
/// answers whether the address was there (`Ok(false)`: already gone, not an error).
pub fn run_guard(
    watch: Watch,
    remove: &mut dyn FnMut(&Vip) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    let s = &watch.region.state;
    let fd = watch.pipe.as_raw_fd();
    // The deadline whose passing was already dealt with; 0 = none.
    let mut fired_for = 0u64;
    loop {
        let deadline = s.deadline.load(Ordering::SeqCst);
        let armed = deadline != 0 && deadline != fired_for;
        let now = mono_ns();
        if armed && now >= deadline {
            fired_for = deadline;
            let stalled =
                Duration::from_nanos(now.saturating_sub(s.checkin.load(Ordering::Relaxed)));
            let removed = remove_all(&watch.region.held.read(), remove);
            if !removed.is_empty() {
                s.removals.fetch_add(1, Ordering::Release);
                warn!(
                    "floatip guard: the daemon has not advanced for {} ms (stopped? SIGSTOP, a hung loop, a paused VM): removed {} so that no two hosts hold it",
                    stalled.as_millis(),
                    removed.join(", ")
                );
            }
            continue;
        }
        let until = if armed { deadline } else { u64::MAX };
        s.asleep_until.store(until, Ordering::SeqCst);
        // A promise stored before our sleep was published may be earlier than `until`: look again.
        if s.deadline.load(Ordering::SeqCst) != deadline {
            s.asleep_until.store(0, Ordering::SeqCst);
            continue;
        }
        let woken = wait_readable(fd, until);
        s.asleep_until.store(0, Ordering::SeqCst);
        if woken? && drain(fd)? {
            let removed = remove_all(&watch.region.held.read(), remove);
            if !removed.is_empty() {
                warn!(
                    "floatip guard: the daemon exited holding its VIPs (killed? crashed?): removed {} so that no two hosts hold it",
                    removed.join(", ")
                );
            }
            debug!("floatip guard: the daemon has gone; exiting");
            return Ok(());
        }
    }
}

/// Removes every VIP of `held`; returns the ones that were there ("192.0.2.97/24 from eth0").
fn remove_all(held: &[Vip], remove: &mut dyn FnMut(&Vip) -> std::io::Result<bool>) -> Vec<String> {
    let mut removed = Vec::new();
    for vip in held {
        let (index, addr, len) = *vip;
        match remove(vip) {
            Ok(true) => removed.push(format!("{addr}/{len} from {}", if_name(index))),
            Ok(false) => {}
            Err(err) => error!(
                "floatip guard: cannot remove {addr}/{len} from {}: {err}",
                if_name(index)
            ),
        }
    }
    removed
}

fn if_name(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("interface #{index}");
    }
    // SAFETY: on success `buf` holds a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Waits until `fd` is readable (or hung up: `Ok(true)`) or CLOCK_MONOTONIC reaches `until_ns`
/// (`Ok(false)`; `u64::MAX` = no timeout). A signal ends the wait early (`Ok(false)`).
fn wait_readable(fd: RawFd, until_ns: u64) -> std::io::Result<bool> {
    let timeout = (until_ns != u64::MAX).then(|| {
        let left = until_ns.saturating_sub(mono_ns());
        libc::timespec {
            tv_sec: (left / 1_000_000_000) as libc::time_t,
            tv_nsec: (left % 1_000_000_000) as libc::c_long,
        }
    });
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    // SAFETY: `pfd` is one valid pollfd and `ts` null or a valid timespec, for the call.
    let rc = unsafe { libc::ppoll(&mut pfd, 1, ts, std::ptr::null()) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        return if err.kind() == std::io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(rc > 0)
}

/// Reads what the pipe holds (the daemon's wake-up bytes); `Ok(true)` at EOF: the daemon has gone.
fn drain(fd: RawFd) -> std::io::Result<bool> {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: `buf` is valid for writes of its length for the call.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => return Ok(true),
            n if n > 0 => continue,
            _ => {
                let err = std::io::Error::last_os_error();
                match err.kind() {
                    std::io::ErrorKind::WouldBlock => return Ok(false),
                    std::io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                }
            }
        }
    }
}

/// The forked guard: its own name, session and signals, nothing inherited it does not need, only
/// CAP_NET_ADMIN; then [`run_guard`] with netlink removals, and `_exit`.
fn child_main(watch: Watch, init_logging: impl FnOnce()) -> ! {
    let keep = watch.pipe.as_raw_fd();
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        become_guard(keep);
        init_logging();
        keep_only_net_admin();
        let mut remover = crate::net::netlink::AddressRemover::open()?;
        run_guard(watch, &mut |&(index, addr, len)| {
            remover.remove(index, addr, len)
        })
    })) {
        Ok(Ok(())) => 0,
        Ok(Err(err)) => {
            error!("floatip guard: {err}; a killed or stopped daemon's VIPs now last until their kernel lifetime ends");
            1
        }
        Err(_) => 1,
    };
    // SAFETY: _exit ends this process at once, without running the daemon's destructors or atexit
    // handlers (which belong to the parent's state).
    unsafe { libc::_exit(code) }
}

/// Name, session, signals and descriptors of the guard process.
fn become_guard(keep: RawFd) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, GUARD_NAME.as_ptr()) };
    // Its own session: a terminal's Ctrl-C, Ctrl-Z or hang-up reaches the daemon (which steps down
    // cleanly), never the guard, which must outlive it.
    // SAFETY: setsid has no memory effects; failing (already a group leader) is harmless.
    unsafe { libc::setsid() };
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGPIPE,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: SIG_IGN for a catchable signal; no handler code runs.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    // Only stdout and stderr (the log) and the pipe stay open; stdin reads nothing.
    // SAFETY: open of a constant NUL-terminated path; dup2 onto stdin, then the spare closed.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
    }
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // SAFETY: closes descriptors this process inherited and will never use; nothing here owns
        // them (the daemon's objects that did are never touched in the guard).
        unsafe { libc::close(fd) };
    }
}

/// Keeps CAP_NET_ADMIN (to remove addresses) and drops every other capability.
fn keep_only_net_admin() {
    use caps::{CapSet, Capability};
    let permitted = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let keep: caps::CapsHashSet = permitted
        .into_iter()
        .filter(|c| *c == Capability::CAP_NET_ADMIN)
        .collect();
    let _ = caps::clear(None, CapSet::Ambient);
    let dropped = caps::clear(None, CapSet::Inheritable)
        .and_then(|()| caps::set(None, CapSet::Effective, &keep))
        .and_then(|()| caps::set(None, CapSet::Permitted, &keep));
    if let Err(err) = dropped {
        warn!("floatip guard: cannot drop capabilities (continuing with them): {err}");
    }
}

#[cfg(test)]
mod tests;
