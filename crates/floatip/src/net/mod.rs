//! The kernel edges of the daemon. Each submodule owns one kind of socket, except [`frame`] (the
//! ARP and neighbour discovery frames the packet sockets carry, built and parsed without one) and
//! [`kernel`] (everything an election asks of the host, as one trait over the others; `fake` is
//! its stand-in for tests without root).

pub mod announce;
mod bpf;
#[cfg(test)]
pub mod fake;
pub mod frame;
pub mod kernel;
pub mod netlink;
pub mod probe;
pub mod sysctl;
pub mod vrrp_socket;
