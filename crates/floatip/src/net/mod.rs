//! The kernel edges of the daemon. Each submodule owns one kind of socket.

pub mod announce;
pub mod netlink;
pub mod probe;
pub mod vrrp_socket;
