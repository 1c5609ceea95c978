//! An etcd election's way to the host: the [`Kernel`] trait the VRRP side uses too (the real
//! `net::kernel::Host`, or the tests' `net::fake::FakeHost`). Its calls block (a netlink round trip,
//! a probe's wait), so each runs on tokio's blocking pool, one at a time per host: an election's
//! task never stalls the runtime the daemon's other tasks share.

use std::sync::{Arc, Mutex};

use crate::net::kernel::Kernel;

/// The host, shared by every etcd election of the daemon.
#[derive(Clone)]
pub struct HostAccess(Arc<Mutex<Box<dyn Kernel + Send>>>);

impl HostAccess {
    pub fn new(kernel: Box<dyn Kernel + Send>) -> HostAccess {
        HostAccess(Arc::new(Mutex::new(kernel)))
    }

    /// Runs `f` on the host, off the runtime's thread; a panic in `f` is the caller's.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Kernel) -> T + Send + 'static,
    ) -> T {
        let host = self.0.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut k = host.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut **k)
        })
        .await;
        match done {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
