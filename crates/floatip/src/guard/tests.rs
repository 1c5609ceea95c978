//! The guard's logic without a fork: the held table, the clock arithmetic, and [`run_guard`] on a
//! thread with a fake kernel (a set of addresses) as its remover.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::atomic::AtomicU64;

use super::shm::{mono_ns, Clock, Region};
use super::*;

fn vip(s: &str, len: u8, index: u32) -> Vip {
    (index, s.parse().unwrap(), len)
}

/// Bound for waits on the guard thread: "something is wrong", never a measurement.
const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn the_held_table_reads_back_what_was_written() {
    let region = Region::new().unwrap();
    assert_eq!(
        region.held.read(),
        Vec::<Vip>::new(),
        "a fresh table is empty"
    );
    let set = vec![
        vip("192.0.2.97", 24, 2),
        vip("2001:db8::97", 64, 2),
        vip("192.0.2.98", 32, 7),
        vip("2001:db8::ffff:1", 128, u32::MAX),
    ];
    region.held.write(&set);
    assert_eq!(region.held.read(), set);
    region.held.write(&set[1..2]);
    assert_eq!(
        region.held.read(),
        set[1..2].to_vec(),
        "a shorter set replaces it"
    );
    region.held.write(&[]);
    assert_eq!(region.held.read(), Vec::<Vip>::new());
    let many: Vec<Vip> = (0..MAX_HELD as u32 + 5)
        .map(|i| (i, IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i)), 24))
        .collect();
    region.held.write(&many);
    assert_eq!(
        region.held.read(),
        many[..MAX_HELD].to_vec(),
        "at most MAX_HELD"
    );
}

#[test]
fn a_write_the_daemon_never_finished_leaves_the_last_complete_set() {
    // A daemon stopped (SIGSTOP) in the middle of set_held has written the inactive buffer only.
    let region = Region::new().unwrap();
    let old = vec![vip("192.0.2.97", 24, 2)];
    region.held.write(&old);
    region
        .held
        .stage(&[vip("192.0.2.98", 24, 2), vip("192.0.2.99", 24, 2)]);
    assert_eq!(region.held.read(), old);
}

#[test]
fn a_reader_never_sees_a_torn_set() {
    let region = Arc::new(Region::new().unwrap());
    let a: Vec<Vip> = (0..3).map(|i| vip("192.0.2.97", 24, i)).collect();
    let b: Vec<Vip> = (10..400).map(|i| vip("2001:db8::97", 64, i)).collect();
    let (writer_region, wa, wb) = (region.clone(), a.clone(), b.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let (writer_stop, writer_count) = (stop.clone(), writes.clone());
    let writer = std::thread::spawn(move || {
        while !writer_stop.load(Ordering::Relaxed) {
            let n = writer_count.fetch_add(1, Ordering::Relaxed);
            writer_region.held.write(if n % 2 == 0 { &wa } else { &wb });
        }
    });
    // Read until the writer has changed the set many times (bounded: a busy machine may start it late).
    let deadline = Instant::now() + PATIENCE;
    let mut reads = 0u64;
    while (reads < 20_000 || writes.load(Ordering::Relaxed) < 2_000) && Instant::now() < deadline {
        let got = region.held.read();
        assert!(
            got.is_empty() || got == a || got == b,
            "torn read: {} entries",
            got.len()
        );
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        writes.load(Ordering::Relaxed) >= 2_000,
        "the writer hardly ran; nothing was tested"
    );
}

#[test]
fn instants_become_monotonic_nanoseconds() {
    let clock = Clock::new();
    let base = Instant::now();
    let at = clock.ns(base);
    // Exact arithmetic around any point.
    assert_eq!(
        clock.ns(base + Duration::from_millis(1500)),
        at + 1_500_000_000
    );
    assert_eq!(clock.ns(base + Duration::from_nanos(1)), at + 1);
    if let Some(earlier) = base.checked_sub(Duration::from_secs(1)) {
        assert_eq!(clock.ns(earlier), at - 1_000_000_000);
    }
    // Same clock as CLOCK_MONOTONIC: an Instant taken between two readings converts to a value
    // between them (give or take the microseconds between the two readings Clock::new took).
    let before = mono_ns();
    let now = clock.ns(Instant::now());
    let after = mono_ns();
    let slop = 1_000_000_000; // catches a wrong clock (REALTIME, BOOTTIME) or unit, not speed
    assert!(
        now + slop >= before && now <= after + slop,
        "{before} <= {now} <= {after}"
    );
}

/// The fake kernel: the addresses present; the guard's remover takes them away and reports each call.
struct FakeKernel {
    present: Arc<Mutex<BTreeSet<Vip>>>,
    calls: mpsc::Receiver<Vip>,
    guard_thread: std::thread::JoinHandle<std::io::Result<()>>,
}

fn start_fake(held: &[Vip]) -> (Guard, FakeKernel) {
    let (guard, watch) = channel().unwrap();
    let present = Arc::new(Mutex::new(held.iter().copied().collect::<BTreeSet<_>>()));
    let (tx, calls) = mpsc::channel();
    let kernel = present.clone();
    let guard_thread = std::thread::spawn(move || {
        run_guard(watch, &mut |v: &Vip| {
            let was = kernel.lock().unwrap().remove(v);
            let _ = tx.send(*v);
            Ok(was)
        })
    });
    guard.set_held(held);
    (
        guard,
        FakeKernel {
            present,
            calls,
            guard_thread,
        },
    )
}

impl FakeKernel {
    fn next_call(&self) -> Vip {
        self.calls
            .recv_timeout(PATIENCE)
            .expect("the guard did not remove anything")
    }

    fn present(&self) -> BTreeSet<Vip> {
        self.present.lock().unwrap().clone()
    }

    /// Waits for the guard thread to return (it must, at EOF).
    fn join(self) -> Vec<Vip> {
        let deadline = Instant::now() + PATIENCE;
        while !self.guard_thread.is_finished() {
            assert!(Instant::now() < deadline, "the guard did not return at EOF");
            std::thread::sleep(Duration::from_millis(2));
        }
        self.guard_thread.join().unwrap().unwrap();
        self.calls.try_iter().collect()
    }
}

/// Polls `cond` (bounded by PATIENCE).
fn wait_for(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "the condition never came true");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_missed_deadline_removes_every_held_vip_once_and_a_new_promise_rearms() {
    let held = [vip("192.0.2.97", 24, 2), vip("2001:db8::97", 64, 2)];
    let (guard, kernel) = start_fake(&held);
    let now = Instant::now();
    guard.alive_until(now, Some(now + Duration::from_millis(20)));
    let first = [kernel.next_call(), kernel.next_call()];
    assert_eq!(first.to_vec(), held.to_vec());
    assert!(kernel.present().is_empty());
    // The count goes up once the removals are done (right after the calls above).
    wait_for(|| guard.removals() == 1);
    // The daemon stays stopped: the same deadline is not acted on twice.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        kernel.calls.try_iter().count(),
        0,
        "removed again without a new promise"
    );
    // It resumes, re-claims, promises again, and stops again: the guard acts again.
    kernel.present.lock().unwrap().extend(held);
    let now = Instant::now();
    guard.alive_until(now, Some(now + Duration::from_millis(20)));
    assert_eq!(
        [kernel.next_call(), kernel.next_call()].to_vec(),
        held.to_vec()
    );
    wait_for(|| guard.removals() == 2);
    drop(guard);
    // At EOF it tries once more (both already gone: nothing logged) and returns.
    assert_eq!(kernel.join(), held.to_vec());
}

#[test]
fn a_daemon_that_dies_holding_vips_loses_them_at_eof() {
    let held = [vip("192.0.2.97", 24, 3)];
    let (guard, kernel) = start_fake(&held);
    let now = Instant::now();
    // A promise far ahead: only the EOF can make the guard act.
    guard.alive_until(now, Some(now + Duration::from_secs(3600)));
    drop(guard);
    let present = kernel.present.clone();
    assert_eq!(kernel.join(), held.to_vec());
    assert!(present.lock().unwrap().is_empty());
}

#[test]
fn a_daemon_that_released_everything_leaves_nothing_to_remove() {
    let held = [vip("192.0.2.97", 24, 3)];
    let (guard, kernel) = start_fake(&held);
    let now = Instant::now();
    guard.alive_until(now, Some(now + Duration::from_secs(3600)));
    // The clean stop: the VIP released, the promise withdrawn, then the exit.
    kernel.present.lock().unwrap().clear();
    guard.set_held(&[]);
    guard.alive_until(Instant::now(), None);
    drop(guard);
    assert_eq!(kernel.join(), Vec::<Vip>::new());
}

#[test]
fn an_earlier_promise_wakes_a_guard_that_sleeps_past_it() {
    let held = [vip("192.0.2.97", 24, 4)];
    let (guard, kernel) = start_fake(&held);
    // Nothing promised: the guard sleeps on the pipe alone. Then a promise that runs out at once.
    let now = Instant::now();
    guard.alive_until(now, Some(now + Duration::from_secs(3600)));
    std::thread::sleep(Duration::from_millis(20));
    let now = Instant::now();
    guard.alive_until(now, Some(now + Duration::from_millis(5)));
    assert_eq!(kernel.next_call(), held[0]);
    drop(guard);
    kernel.join();
}

#[test]
fn the_guard_refuses_to_fork_once_threads_exist() {
    let (tx, rx) = mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    let err = match Guard::start(|| {}) {
        Ok(_) => panic!("forked with two threads"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("before any thread exists"), "{err}");
    drop(tx);
    let _ = other.join();
}
