//! Classic BPF socket filters: what the kernel drops never wakes a thread.

use std::io;
use std::os::fd::RawFd;

/// One instruction.
pub const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}
/// A = the 32-bit word at offset k (read big-endian).
pub const LDW_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
/// A = the 16-bit word at offset k (read big-endian).
pub const LDH_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
/// A = the byte at offset k.
pub const LDB_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
/// If A == k skip jt instructions, else skip jf.
pub const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
/// Return k: keep that many bytes of the packet (0 drops it).
pub const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Attaches (or atomically replaces) the socket's filter.
pub fn attach(fd: RawFd, prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the program.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs a program of the instructions above over `packet` as the kernel would, for tests: the return
/// value, or 0 where the kernel would abort (a load past the end, an unknown instruction, a jump out).
#[cfg(test)]
pub fn run(prog: &[libc::sock_filter], packet: &[u8]) -> u32 {
    let mut a = 0u32;
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        let at = i.k as usize;
        let load = |n: usize| packet.get(at..at + n);
        match i.code {
            LDW_ABS | LDH_ABS | LDB_ABS => {
                let n = match i.code {
                    LDW_ABS => 4,
                    LDH_ABS => 2,
                    _ => 1,
                };
                let Some(b) = load(n) else { return 0 };
                a = b.iter().fold(0, |acc, &x| acc << 8 | u32::from(x));
            }
            JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            RET_K => return i.k,
            _ => return 0,
        }
        pc += 1;
    }
    0
}
