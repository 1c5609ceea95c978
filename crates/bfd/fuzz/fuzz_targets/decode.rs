//! decode() on arbitrary bytes, optionally with the fields that gate the deeper checks fixed up
//! (version 1, a plausible Length) so the fuzzer gets past them. Must never panic; an accepted
//! packet must re-encode to its own first 24 bytes (Length 24) and decode to itself again.
#![no_main]

use arbitrary::Arbitrary;
use bfd::packet::{decode, LEN};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    /// 0: leave the bytes alone; 1: set version 1; 2: also set Length to the payload's length.
    fix: u8,
    bytes: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut b = input.bytes;
    if input.fix % 3 >= 1 && !b.is_empty() {
        b[0] = (b[0] & 0x1f) | 0x20;
    }
    if input.fix % 3 == 2 && b.len() > 3 {
        b[3] = b.len().min(255) as u8;
    }
    if let Ok(p) = decode(&b) {
        let again = p.encode();
        let mut want = [0u8; LEN];
        want.copy_from_slice(&b[..LEN]);
        want[3] = LEN as u8;
        assert_eq!(again, want, "re-encoding changed the packet");
        assert_eq!(decode(&again), Ok(p));
    }
});
