//! The bench's only unsafe code: signalling keepalived's VRRP child, which is not a process the
//! lab started (so `floatip_lab::Proc::signal` cannot reach it).
#![allow(unsafe_code)]

/// Sends `sig` to one positive pid. Callers only pass pids of processes this run started (or their
/// children, read a moment before), never 0 or a negative (process-group) pid.
pub fn kill(pid: u32, sig: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with a positive pid has no memory-safety effect.
    unsafe { libc::kill(pid, sig) == 0 }
}
