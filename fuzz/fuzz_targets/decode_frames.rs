//! Feeds arbitrary bytes to the wire decoder the way a server reads a
//! connection: frame after frame, each decoded as a client's and a
//! server's message. It must never panic; what decodes must encode back
//! to the same bytes.
#![no_main]

use driftwood::remote::wire::{self, ClientMessage, ServerMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    futures::executor::block_on(async {
        let mut reader = bytes;
        while let Ok(body) = wire::read_frame(&mut reader, 1 << 16).await {
            // Compared as bytes: a NaN value is not equal to itself.
            if let Ok(message) = wire::decode::<ClientMessage>(&body) {
                let again = wire::encode(&message);
                let back = wire::decode::<ClientMessage>(&again[4..]).unwrap();
                assert_eq!(wire::encode(&back), again);
            }
            if let Ok(message) = wire::decode::<ServerMessage>(&body) {
                let again = wire::encode(&message);
                let back = wire::decode::<ServerMessage>(&again[4..]).unwrap();
                assert_eq!(wire::encode(&back), again);
            }
        }
    });
});
