//! The kernel edges of the daemon. Each submodule owns one kind of socket.

pub mod announce;
mod bpf;
pub mod netlink;
pub mod probe;
pub mod vrrp_socket;
