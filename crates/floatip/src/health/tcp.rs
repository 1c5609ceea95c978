//! The tcp check: healthy when a TCP connection to the target opens (within the check's timeout, which
//! the caller applies).

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::exec::io_text;

/// One connect to `target`; the connection is closed at once.
pub(super) async fn check(target: SocketAddr) -> Result<(), String> {
    TcpStream::connect(target)
        .await
        .map(drop)
        .map_err(|e| format!("connect {target}: {}", io_text(&e)))
}
