//! Link flags of the `floatip` binary: relative relocations packed (`DT_RELR`, glibc 2.36+), so the
//! dynamic loader reads a few KiB of relocations at start instead of hundreds (the etcd client's gRPC
//! and TLS code doubled them), which keeps the daemon's resident memory where it was.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
