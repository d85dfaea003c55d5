//! The memory that requests in flight may take once decoded, shared by
//! every connection of a [`RemoteServer`](super::RemoteServer).
//!
//! A frame's bytes say little about what it becomes: MessagePack spends one
//! byte on a `nil` or a small integer that decodes into a 32-byte value, so
//! a 16 MiB frame of them is half a gigabyte in memory, and a client may
//! have hundreds in flight. Before a frame is decoded, [`decoded_size`]
//! walks its markers (without allocating) for an upper estimate of what it
//! becomes; the connection takes that much from the server's [`Budget`]
//! and gives it back when the request finishes. While the budget is used
//! up the connection reads no more (backpressure, as for `max_in_flight`);
//! a request larger than the whole budget fails on its own with
//! [`Error::LimitReached`](crate::Error::LimitReached), before it is
//! decoded.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use rmp::Marker;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::wire::WireValue;

/// The budget's unit: permits are KiB.
const UNIT: usize = 1024;

/// What one decoded MessagePack value may take at most, beside its string
/// or binary payload: a SQL value, or a vector's header.
const VALUE_COST: usize = {
    let value = size_of::<WireValue>();
    let vector = size_of::<Vec<WireValue>>();
    if value > vector { value } else { vector }
};

/// An upper estimate of the bytes `body` takes decoded: every value's own
/// size plus its string and binary bytes. A walk over the markers, one
/// pass, no allocation; bytes that are not MessagePack end the walk (the
/// decoder refuses them).
pub(crate) fn decoded_size(body: &[u8]) -> usize {
    let mut at = 0;
    let mut size = 0usize;
    while let Some(&byte) = body.get(at) {
        at += 1;
        // A big-endian length of `bytes` bytes right after the marker.
        let length = |bytes: usize| {
            body.get(at..at + bytes).map_or(0, |b| {
                b.iter()
                    .fold(0usize, |length, &byte| (length << 8) | usize::from(byte))
            })
        };
        // Bytes of length, bytes of payload, whether the payload is
        // decoded into memory of its own (text and blobs).
        let (prefix, payload, kept) = match Marker::from_u8(byte) {
            Marker::FixStr(n) => (0, usize::from(n), true),
            Marker::Str8 | Marker::Bin8 => (1, length(1), true),
            Marker::Str16 | Marker::Bin16 => (2, length(2), true),
            Marker::Str32 | Marker::Bin32 => (4, length(4), true),
            Marker::Ext8 => (2, length(1), false),
            Marker::Ext16 => (3, length(2), false),
            Marker::Ext32 => (5, length(4), false),
            Marker::FixExt1 => (1, 1, false),
            Marker::FixExt2 => (1, 2, false),
            Marker::FixExt4 => (1, 4, false),
            Marker::FixExt8 => (1, 8, false),
            Marker::FixExt16 => (1, 16, false),
            Marker::U8 | Marker::I8 => (0, 1, false),
            Marker::U16 | Marker::I16 | Marker::Array16 | Marker::Map16 => (0, 2, false),
            Marker::U32 | Marker::I32 | Marker::F32 | Marker::Array32 | Marker::Map32 => {
                (0, 4, false)
            }
            Marker::U64 | Marker::I64 | Marker::F64 => (0, 8, false),
            _ => (0, 0, false),
        };
        // A length past the end is the decoder's to refuse.
        let payload = payload.min(body.len().saturating_sub(at + prefix));
        size = size.saturating_add(VALUE_COST);
        if kept {
            size = size.saturating_add(payload);
        }
        at += prefix + payload;
    }
    size
}

/// `bytes` for a person: MiB from one MiB up, KiB below.
pub(crate) fn amount(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// The server's budget for decoded requests in flight.
#[derive(Clone)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    bytes: usize,
}

/// Part of the budget, given back when dropped.
pub(crate) type Share = OwnedSemaphorePermit;

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub(crate) fn new(bytes: usize) -> Self {
        let units = bytes
            .div_ceil(UNIT)
            .clamp(1, Semaphore::MAX_PERMITS.min(usize::MAX / UNIT));
        Budget {
            permits: Arc::new(Semaphore::new(units)),
            bytes: units * UNIT,
        }
    }

    /// The whole budget, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn units(bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX)
    }

    /// `bytes` of the budget now, if that much is free (`bytes` must not
    /// exceed the whole budget).
    pub(crate) fn try_take(&self, bytes: usize) -> Option<Share> {
        self.permits
            .clone()
            .try_acquire_many_owned(Self::units(bytes))
            .ok()
    }

    /// No part of the budget: for what takes next to nothing.
    pub(crate) fn nothing(&self) -> Share {
        self.permits
            .clone()
            .try_acquire_many_owned(0)
            .expect("no permits are always free")
    }

    /// `bytes` of the budget, once that much is free: first come, first
    /// served, so keep the future while waiting (dropped, it loses its
    /// place).
    pub(crate) fn take(&self, bytes: usize) -> BoxFuture<'static, Share> {
        let permits = self.permits.clone();
        let units = Self::units(bytes);
        async move {
            permits
                .acquire_many_owned(units)
                .await
                .expect("the budget's semaphore is never closed")
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::wire::{self, BatchEntry, ClientMessage, Op};
    use crate::types::SqlValue;

    fn body(message: &ClientMessage) -> Vec<u8> {
        wire::encode(message)[4..].to_vec()
    }

    #[test]
    fn a_frame_of_small_values_is_estimated_at_what_it_decodes_to_not_its_length() {
        let nulls = 100_000;
        let message = ClientMessage::Request {
            id: 1,
            op: Op::Batch {
                lane: 0,
                entries: vec![BatchEntry {
                    sql: "INSERT INTO t VALUES (?)".into(),
                    arg_sets: vec![vec![WireValue(SqlValue::Null); nulls]],
                }],
            },
        };
        let body = body(&message);
        let estimate = decoded_size(&body);
        assert!(body.len() < nulls + 100, "one byte per nil: {}", body.len());
        assert!(
            estimate >= nulls * size_of::<WireValue>(),
            "{estimate} bytes estimated for {nulls} decoded values"
        );
        assert!(estimate < (nulls + 100) * VALUE_COST);
    }

    #[test]
    fn text_counts_its_bytes_and_garbage_ends_the_walk() {
        let text = "t".repeat(70_000);
        let message = ClientMessage::Request {
            id: 1,
            op: Op::Run {
                lane: 0,
                sql: text.clone(),
                args: vec![WireValue(SqlValue::Text(text))],
                read: true,
                rows: true,
            },
        };
        let estimate = decoded_size(&body(&message));
        assert!((140_000..141_000).contains(&estimate), "{estimate}");
        // A string marker claiming 4 GiB of a 5-byte body: what the body
        // can hold, not what it claims.
        assert_eq!(decoded_size(&[0xdb, 0xff, 0xff, 0xff, 0xff]), VALUE_COST);
        assert_eq!(decoded_size(&[]), 0);
    }

    #[test]
    fn any_bytes_are_walked_without_panicking_and_never_estimated_past_their_bound() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let length = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
            let estimate = decoded_size(&bytes);
            assert!(
                estimate <= length * (VALUE_COST + 1),
                "{bytes:?}: {estimate}"
            );
        }
    }

    #[test]
    fn shares_of_the_budget_come_back_when_dropped() {
        let budget = Budget::new(10 * UNIT);
        let first = budget.try_take(6 * UNIT).expect("free");
        assert!(budget.try_take(6 * UNIT).is_none(), "only 4 KiB are left");
        drop(first);
        assert!(budget.try_take(6 * UNIT).is_some());
        assert_eq!(budget.bytes(), 10 * UNIT);
        // "No limit" said the natural way neither overflows nor wraps.
        let unlimited = Budget::new(usize::MAX);
        assert!(unlimited.bytes() > 1 << 40);
        assert!(unlimited.try_take(1 << 30).is_some());
    }
}
