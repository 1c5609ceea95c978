//! The codec: one test per receive rule of RFC 5880 6.8.6 that applies to a packet alone, the
//! field layout, and properties: any bytes decode without panicking, an accepted packet re-encodes
//! to its own first 24 bytes, and every valid packet round-trips.

use bfd::packet::{decode, ControlPacket, DecodeError, Diag, State, LEN};
use proptest::prelude::*;

/// A valid Up packet as a peer would send it, for tests to break one field at a time.
fn up() -> ControlPacket {
    ControlPacket {
        diag: Diag::NoDiagnostic,
        state: State::Up,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x0102_0304,
        your_discriminator: 0x0a0b_0c0d,
        desired_min_tx_us: 50_000,
        required_min_rx_us: 50_000,
        required_min_echo_rx_us: 0,
    }
}

fn bytes(p: &ControlPacket) -> Vec<u8> {
    p.encode().to_vec()
}

#[test]
fn a_valid_packet_decodes() {
    assert_eq!(decode(&bytes(&up())), Ok(up()));
}

#[test]
fn shorter_than_the_mandatory_section_is_truncated() {
    let b = bytes(&up());
    for len in 0..LEN {
        assert_eq!(decode(&b[..len]), Err(DecodeError::Truncated { len }));
    }
}

#[test]
fn version_other_than_1_is_refused() {
    for v in [0u8, 2, 3, 7] {
        let mut b = bytes(&up());
        b[0] = (b[0] & 0x1f) | (v << 5);
        assert_eq!(decode(&b), Err(DecodeError::Version(v)));
    }
}

#[test]
fn length_below_24_is_refused() {
    for length in [0u8, 1, 23] {
        let mut b = bytes(&up());
        b[3] = length;
        assert_eq!(
            decode(&b),
            Err(DecodeError::LengthTooShort {
                length,
                auth: false
            })
        );
    }
}

#[test]
fn length_below_26_with_the_a_bit_is_refused() {
    let mut b = bytes(&up());
    b[1] |= 0x04;
    b[3] = 24;
    b.extend_from_slice(&[0, 0]);
    assert_eq!(
        decode(&b),
        Err(DecodeError::LengthTooShort {
            length: 24,
            auth: true
        })
    );
}

#[test]
fn length_beyond_the_payload_is_refused() {
    let mut b = bytes(&up());
    b[3] = 25;
    assert_eq!(
        decode(&b),
        Err(DecodeError::LengthBeyondPayload {
            length: 25,
            payload: 24
        })
    );
}

#[test]
fn bytes_after_the_length_are_ignored() {
    let mut b = bytes(&up());
    b.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(decode(&b), Ok(up()));
    // A Length of 26 without the A bit: the two bytes are not ours to read either.
    b[3] = 26;
    assert_eq!(decode(&b), Ok(up()));
}

#[test]
fn detect_mult_zero_is_refused() {
    let mut b = bytes(&up());
    b[2] = 0;
    assert_eq!(decode(&b), Err(DecodeError::DetectMultZero));
}

#[test]
fn multipoint_is_refused() {
    let mut b = bytes(&up());
    b[1] |= 0x01;
    assert_eq!(decode(&b), Err(DecodeError::Multipoint));
}

#[test]
fn my_discriminator_zero_is_refused() {
    let p = ControlPacket {
        my_discriminator: 0,
        ..up()
    };
    assert_eq!(decode(&bytes(&p)), Err(DecodeError::MyDiscriminatorZero));
}

#[test]
fn your_discriminator_zero_only_in_down_or_admin_down() {
    for state in [State::Init, State::Up] {
        let p = ControlPacket {
            state,
            your_discriminator: 0,
            ..up()
        };
        assert_eq!(
            decode(&bytes(&p)),
            Err(DecodeError::YourDiscriminatorZero { state })
        );
    }
    for state in [State::Down, State::AdminDown] {
        let p = ControlPacket {
            state,
            your_discriminator: 0,
            ..up()
        };
        assert_eq!(decode(&bytes(&p)), Ok(p));
    }
}

#[test]
fn the_a_bit_is_refused_without_authentication() {
    let mut b = bytes(&up());
    b[1] |= 0x04;
    b[3] = 26;
    b.extend_from_slice(&[1, 2]); // Auth Type 1 (simple password), Auth Len 2
    assert_eq!(decode(&b), Err(DecodeError::Authentication));
}

#[test]
fn checks_come_in_the_rfc_order() {
    // Version is checked before length, length before detect mult, and so on.
    let mut b = bytes(&ControlPacket {
        my_discriminator: 0,
        detect_mult: 0,
        ..up()
    });
    assert_eq!(decode(&b), Err(DecodeError::DetectMultZero));
    b[3] = 0;
    assert!(matches!(
        decode(&b),
        Err(DecodeError::LengthTooShort { .. })
    ));
    b[0] = 0;
    assert_eq!(decode(&b), Err(DecodeError::Version(0)));
}

type SetFlag = fn(&mut ControlPacket);

#[test]
fn every_flag_lands_on_its_bit() {
    let cases: [(SetFlag, u8); 4] = [
        (|p| p.poll = true, 0x20),
        (|p| p.final_ = true, 0x10),
        (|p| p.control_plane_independent = true, 0x08),
        (|p| p.demand = true, 0x02),
    ];
    for (set, bit) in cases {
        let mut p = up();
        set(&mut p);
        let b = p.encode();
        assert_eq!(b[1], 0xc0 | bit, "{p:?}");
        assert_eq!(decode(&b), Ok(p));
    }
}

#[test]
fn states_and_diagnostics_round_trip() {
    for bits in 0..4u8 {
        assert_eq!(State::from_bits(bits).bits(), bits);
    }
    for code in 0..32u8 {
        let d = Diag::from_code(code);
        assert_eq!(d.code(), code);
        assert_eq!(matches!(d, Diag::Reserved(_)), code >= 9);
        assert!(!d.to_string().is_empty());
    }
}

#[test]
fn errors_have_labels_and_words() {
    let errors = [
        DecodeError::Truncated { len: 3 },
        DecodeError::Version(2),
        DecodeError::LengthTooShort {
            length: 20,
            auth: false,
        },
        DecodeError::LengthBeyondPayload {
            length: 30,
            payload: 24,
        },
        DecodeError::DetectMultZero,
        DecodeError::Multipoint,
        DecodeError::MyDiscriminatorZero,
        DecodeError::YourDiscriminatorZero { state: State::Up },
        DecodeError::Authentication,
    ];
    let mut labels: Vec<_> = errors.iter().map(|e| e.label()).collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), errors.len(), "labels are distinct");
    for e in errors {
        assert!(!e.to_string().is_empty());
    }
}

fn any_state() -> impl Strategy<Value = State> {
    (0u8..4).prop_map(State::from_bits)
}

prop_compose! {
    fn valid_packet()(
        diag in 0u8..32,
        state in any_state(),
        flags in any::<[bool; 4]>(),
        detect_mult in 1u8..,
        my in 1u32..,
        your in any::<u32>(),
        tx in any::<u32>(),
        rx in any::<u32>(),
        echo in any::<u32>(),
    ) -> ControlPacket {
        let your = if your == 0 && matches!(state, State::Init | State::Up) { 1 } else { your };
        ControlPacket {
            diag: Diag::from_code(diag),
            state,
            poll: flags[0],
            final_: flags[1],
            control_plane_independent: flags[2],
            demand: flags[3],
            detect_mult,
            my_discriminator: my,
            your_discriminator: your,
            desired_min_tx_us: tx,
            required_min_rx_us: rx,
            required_min_echo_rx_us: echo,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(p) = decode(&b) {
            // Accepted: it re-encodes to its own mandatory section, Length aside.
            let mut want = b[..LEN].to_vec();
            want[3] = LEN as u8;
            prop_assert_eq!(p.encode().to_vec(), want);
        }
    }

    #[test]
    fn mostly_valid_bytes_never_panic(p in valid_packet(), at in 0usize..24, xor in any::<u8>()) {
        let mut b = p.encode();
        b[at] ^= xor;
        let _ = decode(&b);
    }

    #[test]
    fn valid_packets_round_trip(p in valid_packet()) {
        prop_assert_eq!(decode(&p.encode()), Ok(p));
    }
}
