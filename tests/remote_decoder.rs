//! The wire decoder against hostile bytes: random byte strings, valid
//! frames mutated at random, and the inputs the fuzzer found
//! (`fuzz/corpus/decode_frames`), so every test run exercises it. Decoding
//! may fail — with a protocol error — but never panics, never allocates
//! what a length prefix claims beyond the limit, and what decodes encodes
//! back to the same bytes.
#![cfg(feature = "remote")]

use driftwood::remote::wire::{self, ClientMessage, Op, Outcome, ServerMessage, WireValue};
use driftwood::types::SqlValue;
use proptest::prelude::*;

/// Reads frames from `bytes` as a server reads a connection, decoding each
/// as both sides' messages; stops at the first broken frame.
fn decode_stream(bytes: &[u8]) -> usize {
    futures::executor::block_on(async {
        let mut reader = bytes;
        let mut decoded = 0;
        while let Ok(body) = wire::read_frame(&mut reader, 1 << 16).await {
            // Compared as bytes: a NaN value is not equal to itself.
            if let Ok(message) = wire::decode::<ClientMessage>(&body) {
                let again = wire::encode(&message);
                let back = wire::decode::<ClientMessage>(&again[4..]).unwrap();
                assert_eq!(wire::encode(&back), again, "what decodes encodes back");
                decoded += 1;
            }
            if let Ok(message) = wire::decode::<ServerMessage>(&body) {
                let again = wire::encode(&message);
                let back = wire::decode::<ServerMessage>(&again[4..]).unwrap();
                assert_eq!(wire::encode(&back), again, "what decodes encodes back");
            }
        }
        decoded
    })
}

fn sample_frames() -> Vec<u8> {
    let messages = [
        ClientMessage::Hello {
            token: Some("token".into()),
            client: "probe".into(),
            max_frame: None,
        },
        ClientMessage::Request {
            id: 1,
            op: Op::Run {
                lane: 0,
                sql: "SELECT ?, ?, ?".into(),
                args: vec![
                    WireValue(SqlValue::Integer(-5)),
                    WireValue(SqlValue::Real(2.5)),
                    WireValue(SqlValue::Blob(vec![1, 2, 3])),
                ],
                read: true,
                rows: true,
            },
        },
        ClientMessage::Request {
            id: 2,
            op: Op::Begin {
                lane: 4,
                level: 9,
                immediate: true,
                parent: None,
            },
        },
        ClientMessage::Cancel { id: 2 },
        ClientMessage::Goodbye {},
    ];
    let mut bytes: Vec<u8> = messages.iter().flat_map(wire::encode).collect();
    bytes.extend(wire::encode(&ServerMessage::Reply {
        id: 1,
        outcome: Outcome::Ok {},
    }));
    bytes
}

#[test]
fn the_sample_frames_decode() {
    assert_eq!(decode_stream(&sample_frames()), 5);
}

#[test]
fn a_length_prefix_over_the_limit_is_refused_before_reading() {
    let bytes = [0xff_u8, 0xff, 0xff, 0xff, 0, 0];
    let error =
        futures::executor::block_on(wire::read_frame(&mut &bytes[..], 1 << 16)).unwrap_err();
    let wire::ReadError::Broken(error) = error else {
        panic!("a broken frame expected");
    };
    assert_eq!(
        error.to_string(),
        "remote protocol error: a frame of 4294967295 bytes is over the limit of 65536 bytes"
    );
}

#[test]
fn the_fuzzers_findings_still_decode_without_panicking() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_frames");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&corpus).expect("the fuzz corpus is kept in the repository") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        decode_stream(&bytes);
        inputs += 1;
    }
    assert!(inputs > 0, "no inputs in {}", corpus.display());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_stream(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = sample_frames();
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        let cut = cut % (bytes.len() + 1);
        decode_stream(&bytes[..cut]);
    }
}
