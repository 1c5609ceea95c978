//! Golden packets built by hand, field by field, from RFC 5880 section 4.1's layout (no capture
//! from a peer yet: FRR's bfdd and keepalived's BFD are the interop checks still to come). Each must
//! decode to the fields written next to it and encode back to the same bytes.

use bfd::packet::{decode, ControlPacket, DecodeError, Diag, State};

/// The bytes of one packet, one 32-bit word per argument so each line matches a row of 4.1's figure.
fn words(w: [u32; 6]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn check(bytes: &[u8], want: ControlPacket) {
    assert_eq!(decode(bytes), Ok(want), "decode {bytes:02x?}");
    assert_eq!(want.encode().to_vec(), bytes, "encode {want:?}");
}

#[test]
fn first_packet_of_a_session_down_slow_start() {
    check(
        &words([
            // Vers 1 (001) | Diag 0 (00000) = 0x20; Sta Down (01) no flags = 0x40; Mult 3; Length 24
            0x2040_0318,
            0x0000_0001, // My Discriminator 1
            0x0000_0000, // Your Discriminator 0: nothing heard yet
            0x000f_4240, // Desired Min TX 1,000,000 us: slow start (6.8.3)
            0x0004_93e0, // Required Min RX 300,000 us
            0x0000_c350, // Required Min Echo RX 50,000 us
        ]),
        ControlPacket {
            diag: Diag::NoDiagnostic,
            state: State::Down,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 1,
            your_discriminator: 0,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 50_000,
        },
    );
}

#[test]
fn up_with_poll_after_slow_start() {
    check(
        &words([
            // Vers 1, Diag 0; Sta Up (11) P (1) = 0xe0; Mult 3; Length 24
            0x20e0_0318,
            0x1234_5678,
            0x9abc_def0,
            0x0000_c350, // 50 ms
            0x0000_c350, // 50 ms
            0x0000_0000, // no echo
        ]),
        ControlPacket {
            diag: Diag::NoDiagnostic,
            state: State::Up,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x1234_5678,
            your_discriminator: 0x9abc_def0,
            desired_min_tx_us: 50_000,
            required_min_rx_us: 50_000,
            required_min_echo_rx_us: 0,
        },
    );
}

#[test]
fn init_with_final_and_c_bit() {
    check(
        &words([
            // Vers 1, Diag 0; Sta Init (10) F (1) C (1) = 0x98; Mult 5; Length 24
            0x2098_0518,
            0xffff_ffff,
            0x0000_0007,
            0x0001_86a0, // 100 ms
            0x0000_2710, // 10 ms
            0x0000_0000,
        ]),
        ControlPacket {
            diag: Diag::NoDiagnostic,
            state: State::Init,
            poll: false,
            final_: true,
            control_plane_independent: true,
            demand: false,
            detect_mult: 5,
            my_discriminator: u32::MAX,
            your_discriminator: 7,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 10_000,
            required_min_echo_rx_us: 0,
        },
    );
}

#[test]
fn down_after_detection_time_expired() {
    check(
        &words([
            // Vers 1, Diag 1 (00001) = 0x21; Sta Down = 0x40; Mult 3; Length 24
            0x2140_0318,
            0x0000_0002,
            0x0000_0000,
            0x000f_4240,
            0x0000_c350,
            0x0000_0000,
        ]),
        ControlPacket {
            diag: Diag::ControlDetectionTimeExpired,
            state: State::Down,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 2,
            your_discriminator: 0,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 50_000,
            required_min_echo_rx_us: 0,
        },
    );
}

#[test]
fn admin_down_with_demand_bit() {
    check(
        &words([
            // Vers 1, Diag 7 (00111) = 0x27; Sta AdminDown (00) D (1) = 0x02; Mult 1; Length 24
            0x2702_0118,
            0x0000_0003,
            0x0000_0004,
            0x000f_4240,
            0x0000_0000, // Required Min RX 0: send me nothing
            0x0000_0000,
        ]),
        ControlPacket {
            diag: Diag::AdministrativelyDown,
            state: State::AdminDown,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: true,
            detect_mult: 1,
            my_discriminator: 3,
            your_discriminator: 4,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 0,
            required_min_echo_rx_us: 0,
        },
    );
}

#[test]
fn simple_password_authentication_is_refused() {
    // 4.1 + 4.2.1: A bit (0x04) on an Up packet, Length 31 = 24 + Auth Type 1, Auth Len 7,
    // Key ID 1, password "abcd".
    let mut b = words([
        0x20c4_031f,
        0x0000_0001,
        0x0000_0002,
        0x0000_c350,
        0x0000_c350,
        0,
    ]);
    b.extend_from_slice(&[1, 7, 1, b'a', b'b', b'c', b'd']);
    assert_eq!(decode(&b), Err(DecodeError::Authentication));
}

#[test]
fn multipoint_bit_is_refused() {
    // The M bit (0x01) on a Down packet.
    let b = words([0x2041_0318, 1, 0, 0x000f_4240, 0x000f_4240, 0]);
    assert_eq!(decode(&b), Err(DecodeError::Multipoint));
}

#[test]
fn up_without_your_discriminator_is_refused() {
    let b = words([0x20c0_0318, 1, 0, 0x000f_4240, 0x000f_4240, 0]);
    assert_eq!(
        decode(&b),
        Err(DecodeError::YourDiscriminatorZero { state: State::Up })
    );
}
