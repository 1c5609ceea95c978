//! The kernel edges of the daemon. Each submodule owns one kind of socket, except [`frame`]: the
//! ARP and neighbour discovery frames the packet sockets carry, built and parsed without one.

pub mod announce;
mod bpf;
pub mod frame;
pub mod netlink;
pub mod probe;
pub mod sysctl;
pub mod vrrp_socket;
