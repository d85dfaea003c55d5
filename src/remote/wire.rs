//! The wire protocol: the preamble, frames and messages a remote client and
//! a served database exchange (the reference is `docs/PROTOCOL.md`).
//!
//! A connection starts with an 8-byte preamble each way (the magic value
//! `DRIFTW` and the protocol version, big-endian `u16`); after it, each
//! side sends frames: a big-endian `u32` length, then that many bytes of
//! MessagePack holding one message — a map with one key, the message's
//! name, whose value is a map of its fields by name. Unknown fields are
//! ignored, so a later version can add some. Values keep SQLite's five
//! types apart: MessagePack `nil`, integers, 64-bit floats, strings and
//! binary. Decoding is pure and never trusts a length it was sent: a frame
//! longer than the limit is refused before anything is read.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::Error;
use crate::sqlite::Execution;
use crate::sqlite::changes::{Changes, ReadSet};
use crate::types::SqlValue;

/// The version of the protocol this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The first bytes of every connection, each way, before the version.
pub const MAGIC: [u8; 6] = *b"DRIFTW";

/// The preamble: the magic value and [`PROTOCOL_VERSION`].
pub fn preamble() -> [u8; 8] {
    let mut bytes = [0; 8];
    bytes[..6].copy_from_slice(&MAGIC);
    bytes[6..].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    bytes
}

/// How long each side waits for the other's part of the handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The frame size limit when none is configured: 16 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 16 << 20;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first frame: who the client is and its credentials.
    Hello {
        /// The token, when the server asks for one.
        token: Option<String>,
        /// A name for logs.
        client: String,
        /// The largest reply frame the client accepts (the default limit
        /// when absent): a longer reply is replaced by an error.
        #[serde(default)]
        max_frame: Option<u32>,
    },
    /// A request, answered by a [`ServerMessage::Reply`] with its id.
    Request {
        /// Chosen by the client, unique among its requests in flight.
        id: u64,
        /// What to do.
        op: Op,
    },
    /// The client gave up on request `id`: it is skipped, or its statement
    /// interrupted. No reply follows.
    Cancel {
        /// The request.
        id: u64,
    },
    /// The client is done; the server closes the connection.
    Goodbye {},
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Runs one statement in `lane` (0: no transaction).
    Run {
        /// The transaction lane, 0 for none.
        lane: u64,
        /// The SQL text.
        sql: String,
        /// Its arguments, in placeholder order.
        #[serde(deserialize_with = "values")]
        args: Vec<WireValue>,
        /// Whether it only reads (a built select): a reader may run it.
        read: bool,
        /// Whether the client wants the rows (else what it did).
        rows: bool,
    },
    /// Runs statements in one transaction (a savepoint inside `lane`'s),
    /// each text once per argument set.
    Batch {
        /// The transaction lane, 0 for none.
        lane: u64,
        /// Each statement and its argument sets.
        entries: Vec<BatchEntry>,
    },
    /// Opens transaction level `level` in `lane`.
    Begin {
        /// The lane the level belongs to.
        lane: u64,
        /// The level's id, chosen by the client.
        level: u64,
        /// `BEGIN IMMEDIATE` (takes the write lock at once).
        immediate: bool,
        /// For a savepoint: the lane of the transaction it nests in.
        parent: Option<u64>,
    },
    /// Commits `level` (and every level inside it).
    Commit {
        /// Its lane.
        lane: u64,
        /// The level.
        level: u64,
    },
    /// Rolls back `level` (and every level inside it).
    Rollback {
        /// Its lane.
        lane: u64,
        /// The level.
        level: u64,
    },
    /// From now on, every commit's changes are pushed to this connection
    /// as [`ServerMessage::Changed`].
    Subscribe {},
    /// Runs a watched query outside any transaction, recording what it
    /// reads: answered with [`Outcome::Watched`].
    Watch {
        /// The SQL text (it must only read).
        sql: String,
        /// Its arguments.
        #[serde(deserialize_with = "values")]
        args: Vec<WireValue>,
        /// Whether the client wants the rows (else what it did).
        rows: bool,
    },
}

/// One statement of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEntry {
    /// The SQL text.
    pub sql: String,
    /// One argument set per run.
    #[serde(deserialize_with = "value_sets")]
    pub arg_sets: Vec<Vec<WireValue>>,
}

/// Values from a MessagePack array only. Asked for a sequence, the
/// decoder would also take binary, one element per byte: a byte of frame
/// per 32-byte value, past what the memory budget estimated (it counts
/// binary as bytes).
fn values<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<WireValue>, D::Error> {
    deserializer.deserialize_any(Sequence(std::marker::PhantomData))
}

/// Argument sets: an array of arrays (see [`values`]).
fn value_sets<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<WireValue>>, D::Error> {
    struct Set(Vec<WireValue>);
    impl<'de> Deserialize<'de> for Set {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            values(deserializer).map(Set)
        }
    }
    let sets: Vec<Set> = deserializer.deserialize_any(Sequence(std::marker::PhantomData))?;
    Ok(sets.into_iter().map(|set| set.0).collect())
}

/// A visitor of arrays only.
struct Sequence<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Sequence<T> {
    type Value = Vec<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // As serde does: trust the length only so far.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

/// What a server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerMessage {
    /// The handshake succeeded.
    Welcome {
        /// A name for logs (driftwood and its version).
        server: String,
        /// The database's `user_version`.
        schema_version: i64,
        /// Whether every write is refused.
        read_only: bool,
        /// The largest frame the server accepts.
        max_frame: u32,
    },
    /// The handshake failed; the server closes the connection.
    Refused {
        /// Why.
        error: Error,
    },
    /// The answer to request `id`.
    Reply {
        /// The request.
        id: u64,
        /// Its result.
        outcome: Outcome,
    },
    /// A commit changed the database (after [`Op::Subscribe`]); several
    /// commits may arrive merged into one.
    Changed {
        /// What changed.
        changes: ChangeSet,
    },
    /// The server is closing the connection (shutting down, idle too long,
    /// a protocol error); requests without a reply get none.
    Closing {
        /// Why.
        reason: String,
    },
}

/// A request's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The rows of a statement run for its rows.
    Rows {
        /// The result columns' names.
        columns: Vec<String>,
        /// Each row's values, one per column.
        rows: Vec<Vec<WireValue>>,
    },
    /// What a statement (or batch) run for its effect did.
    Done {
        /// Rows inserted, updated or deleted.
        rows_affected: u64,
        /// The rowid of the last inserted row.
        last_insert_id: i64,
    },
    /// A watched query's result and what it read.
    Watched {
        /// Its rows, its execution, or its error.
        outcome: Box<Outcome>,
        /// The tables and columns it read.
        reads: Reads,
    },
    /// A transaction request succeeded.
    Ok {},
    /// The request failed.
    Failed {
        /// The same error an in-process client gets.
        error: Error,
    },
}

impl From<Execution> for Outcome {
    fn from(done: Execution) -> Self {
        Outcome::Done {
            rows_affected: done.rows_affected,
            last_insert_id: done.last_insert_id,
        }
    }
}

/// What one or more commits changed: each table with the kinds of change,
/// the columns an `UPDATE` set and the rowids touched when known (the
/// encoding is in `docs/PROTOCOL.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangeSet(pub(crate) Changes);

/// The tables and columns a watched query read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reads(pub(crate) ReadSet);

/// A [`SqlValue`] as MessagePack encodes it: `nil`, an integer, a 64-bit
/// float, a string or binary — never confused with one another.
#[derive(Debug, Clone, PartialEq)]
pub struct WireValue(pub SqlValue);

impl Serialize for WireValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            SqlValue::Null => serializer.serialize_unit(),
            SqlValue::Integer(i) => serializer.serialize_i64(*i),
            SqlValue::Real(r) => serializer.serialize_f64(*r),
            SqlValue::Text(t) => serializer.serialize_str(t),
            SqlValue::Blob(b) => serializer.serialize_bytes(b),
        }
    }
}

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Value;
        impl<'de> Visitor<'de> for Value {
            type Value = WireValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("nil, an integer, a float, a string or binary")
            }
            fn visit_unit<E>(self) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Null))
            }
            fn visit_none<E>(self) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Null))
            }
            fn visit_bool<E>(self, b: bool) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Integer(b.into())))
            }
            fn visit_i64<E>(self, i: i64) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Integer(i)))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<WireValue, E> {
                i64::try_from(u)
                    .map(|i| WireValue(SqlValue::Integer(i)))
                    .map_err(|_| E::custom(format!("integer {u} does not fit in 64 signed bits")))
            }
            fn visit_f64<E>(self, r: f64) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Real(r)))
            }
            fn visit_str<E>(self, t: &str) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Text(t.to_owned())))
            }
            fn visit_string<E>(self, t: String) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Text(t)))
            }
            fn visit_bytes<E>(self, b: &[u8]) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Blob(b.to_vec())))
            }
            fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<WireValue, E> {
                Ok(WireValue(SqlValue::Blob(b)))
            }
        }
        deserializer.deserialize_any(Value)
    }
}

/// Wraps values for the wire.
pub fn to_wire(values: Vec<SqlValue>) -> Vec<WireValue> {
    values.into_iter().map(WireValue).collect()
}

/// Unwraps values from the wire.
pub fn from_wire(values: Vec<WireValue>) -> Vec<SqlValue> {
    values.into_iter().map(|WireValue(v)| v).collect()
}

/// A message as the body of a frame.
pub fn encode(message: &impl Serialize) -> Vec<u8> {
    let mut body = vec![0; 4];
    rmp_serde::encode::write_named(&mut body, message).expect("driftwood's messages always encode");
    let length = u32::try_from(body.len() - 4).unwrap_or(u32::MAX);
    body[..4].copy_from_slice(&length.to_be_bytes());
    body
}

/// A frame's body as a message.
pub fn decode<'a, M: Deserialize<'a>>(body: &'a [u8]) -> Result<M, Error> {
    let mut decoder = rmp_serde::Deserializer::from_read_ref(body);
    // No message nests deeper than a few levels; the decoder's default
    // (1,024) lets a small frame of nested arrays in an ignored field
    // overflow a thread's stack.
    decoder.set_max_depth(MAX_DEPTH);
    M::deserialize(&mut decoder).map_err(|e| protocol(format!("a malformed message: {e}")))
}

/// How deep a message may nest (maps and arrays, unknown fields included).
pub const MAX_DEPTH: usize = 32;

/// [`Error::Protocol`] with `message`.
pub fn protocol(message: impl Into<String>) -> Error {
    Error::Protocol {
        message: message.into(),
    }
}

/// How reading a frame ended, when it brought none.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between frames.
    Closed,
    /// Anything else: a broken frame, a failed read.
    Broken(Error),
}

impl ReadError {
    /// As an error, for where the peer closing is not an answer.
    pub fn into_error(self) -> Error {
        match self {
            ReadError::Closed => protocol("the connection ended"),
            ReadError::Broken(error) => error,
        }
    }
}

/// The id of the request in `body`, read without decoding the rest (the
/// decoder skips what it ignores without keeping it); `None` if `body` is
/// another message. Every form a [`ClientMessage`] may take is read: the
/// variant by name or index, its fields as a map or an array.
pub fn request_id(body: &[u8]) -> Result<Option<u64>, Error> {
    /// The variants of [`ClientMessage`], in order, with only a request's
    /// id kept.
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Hello(de::IgnoredAny),
        Request(Id),
        Cancel(de::IgnoredAny),
        Goodbye(de::IgnoredAny),
    }
    struct Id(u64);
    impl<'de> Deserialize<'de> for Id {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Fields;
            impl<'de> Visitor<'de> for Fields {
                type Value = Id;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a request's fields")
                }
                fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Id, A::Error> {
                    let id = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::missing_field("id"))?;
                    while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                    Ok(Id(id))
                }
                fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Id, A::Error> {
                    let mut id = None;
                    while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                        if key == "id" {
                            id = Some(map.next_value()?);
                        } else {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                    id.map(Id).ok_or_else(|| de::Error::missing_field("id"))
                }
            }
            deserializer.deserialize_any(Fields)
        }
    }
    Ok(match decode::<Kind>(body)? {
        Kind::Request(Id(id)) => Some(id),
        Kind::Hello(_) | Kind::Cancel(_) | Kind::Goodbye(_) => None,
    })
}

/// Reads the peer's preamble and checks its magic value and version.
pub async fn read_preamble(io: &mut (impl AsyncRead + Unpin)) -> Result<u16, Error> {
    let mut bytes = [0; 8];
    io.read_exact(&mut bytes)
        .await
        .map_err(|e| protocol(format!("the connection ended before its preamble: {e}")))?;
    if bytes[..6] != MAGIC {
        return Err(protocol(
            "the peer does not speak driftwood's protocol (wrong magic value)",
        ));
    }
    Ok(u16::from_be_bytes([bytes[6], bytes[7]]))
}

/// Reads one frame's body, refusing one longer than `max` before reading
/// it.
pub async fn read_frame(io: &mut (impl AsyncRead + Unpin), max: u32) -> Result<Vec<u8>, ReadError> {
    let mut length = [0; 4];
    let mut got = 0;
    while got < 4 {
        match io.read(&mut length[got..]).await {
            Ok(0) if got == 0 => return Err(ReadError::Closed),
            Ok(0) => {
                return Err(ReadError::Broken(protocol(
                    "the connection ended inside a frame's length",
                )));
            }
            Ok(n) => got += n,
            Err(e) => return Err(ReadError::Broken(protocol(format!("reading failed: {e}")))),
        }
    }
    let length = frame_length(length, max)?;
    let mut body = vec![0; length];
    io.read_exact(&mut body).await.map_err(|_| {
        ReadError::Broken(protocol(format!(
            "the connection ended inside a frame of {length} bytes"
        )))
    })?;
    Ok(body)
}

/// A frame's length from its prefix, refused past `max`.
fn frame_length(prefix: [u8; 4], max: u32) -> Result<usize, ReadError> {
    let length = u32::from_be_bytes(prefix);
    if length > max {
        return Err(ReadError::Broken(protocol(format!(
            "a frame of {length} bytes is over the limit of {max} bytes"
        ))));
    }
    Ok(length as usize)
}

/// How much room a [`FrameReader`] keeps once its buffer is empty.
const SPARE_ROOM: usize = 64 * 1024;

/// Frames read from one connection through a buffer: each read takes what
/// the socket has (several pipelined frames in one system call), and
/// [`FrameReader::next`] can be cancelled — by a timer, another branch of a
/// `select!` — without losing a byte.
#[derive(Debug)]
pub struct FrameReader {
    buffer: Vec<u8>,
    max: u32,
}

impl FrameReader {
    /// A reader refusing frames longer than `max` bytes.
    pub fn new(max: u32) -> Self {
        FrameReader {
            buffer: Vec::new(),
            max,
        }
    }

    /// The next frame's body. Cancel-safe: bytes already read stay in the
    /// buffer for the next call.
    pub async fn next(&mut self, io: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(frame) = self.buffered()? {
                return Ok(frame);
            }
            self.buffer.reserve(8192);
            match io.read_buf(&mut self.buffer).await {
                Ok(0) if self.buffer.is_empty() => return Err(ReadError::Closed),
                Ok(0) => {
                    return Err(ReadError::Broken(protocol(format!(
                        "the connection ended inside a frame ({} bytes of it came)",
                        self.buffer.len()
                    ))));
                }
                Ok(_) => {}
                Err(e) => return Err(ReadError::Broken(protocol(format!("reading failed: {e}")))),
            }
        }
    }

    /// The next frame's body if the buffer holds all of it, without
    /// reading: the frames of a burst that came in one read.
    pub fn buffered(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(prefix) = self.buffer.first_chunk::<4>() else {
            return Ok(None);
        };
        let length = frame_length(*prefix, self.max)?;
        if self.buffer.len() < 4 + length {
            return Ok(None);
        }
        let body = self.buffer[4..4 + length].to_vec();
        self.buffer.drain(..4 + length);
        // A big frame's room is not kept for the connection's life.
        if self.buffer.is_empty() && self.buffer.capacity() > SPARE_ROOM {
            self.buffer = Vec::new();
        }
        Ok(Some(body))
    }
}

/// Writes `frames` (each from [`encode`]) and flushes.
pub async fn write_frame(io: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> std::io::Result<()> {
    io.write_all(frame).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConstraintKind;

    fn round_trip<M: Serialize + for<'a> Deserialize<'a> + PartialEq + std::fmt::Debug>(
        message: M,
    ) {
        let frame = encode(&message);
        let length = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(length, frame.len() - 4);
        assert_eq!(decode::<M>(&frame[4..]).unwrap(), message);
    }

    #[test]
    fn values_keep_their_types_exactly() {
        let values = vec![
            SqlValue::Null,
            SqlValue::Integer(i64::MIN),
            SqlValue::Integer(i64::MAX),
            SqlValue::Integer(0),
            SqlValue::Real(1.0),
            SqlValue::Real(-0.0),
            SqlValue::Real(f64::MAX),
            SqlValue::Text(String::new()),
            SqlValue::Text("héllo\0".into()),
            SqlValue::Blob(vec![]),
            SqlValue::Blob(vec![0, 255, 1]),
        ];
        let message = Outcome::Rows {
            columns: vec!["v".into()],
            rows: values.iter().cloned().map(|v| vec![WireValue(v)]).collect(),
        };
        let frame = encode(&message);
        let Outcome::Rows { rows, .. } = decode::<Outcome>(&frame[4..]).unwrap() else {
            panic!("rows expected");
        };
        let back: Vec<SqlValue> = rows.into_iter().flat_map(from_wire).collect();
        assert_eq!(back.len(), values.len());
        for (got, sent) in back.iter().zip(&values) {
            match (got, sent) {
                (SqlValue::Real(a), SqlValue::Real(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                _ => assert_eq!(got, sent),
            }
        }
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(ClientMessage::Hello {
            token: Some("secret".into()),
            client: "test".into(),
            max_frame: None,
        });
        round_trip(ClientMessage::Request {
            id: 7,
            op: Op::Run {
                lane: 0,
                sql: "SELECT ?".into(),
                args: to_wire(vec![SqlValue::Integer(1), SqlValue::Real(1.5)]),
                read: true,
                rows: true,
            },
        });
        round_trip(ClientMessage::Request {
            id: 8,
            op: Op::Batch {
                lane: 3,
                entries: vec![BatchEntry {
                    sql: "INSERT INTO t VALUES (?)".into(),
                    arg_sets: vec![to_wire(vec![SqlValue::Null])],
                }],
            },
        });
        round_trip(ClientMessage::Request {
            id: 9,
            op: Op::Begin {
                lane: 3,
                level: 4,
                immediate: true,
                parent: Some(3),
            },
        });
        round_trip(ClientMessage::Cancel { id: 9 });
        round_trip(ClientMessage::Goodbye {});
        round_trip(ServerMessage::Reply {
            id: 7,
            outcome: Outcome::Failed {
                error: Error::Constraint {
                    kind: ConstraintKind::Unique,
                    table: Some("t".into()),
                    column: Some("x".into()),
                    message: "UNIQUE constraint failed: t.x".into(),
                    sql: "INSERT INTO t VALUES (?)".into(),
                },
            },
        });
        round_trip(ServerMessage::Reply {
            id: 7,
            outcome: Outcome::Ok {},
        });
        round_trip(ServerMessage::Closing {
            reason: "shutting down".into(),
        });
    }

    #[test]
    fn messages_are_maps_of_one_entry_as_documented() {
        let mut cancel = vec![0, 0, 0, 13, 0x81, 0xa6];
        cancel.extend(b"cancel");
        cancel.extend([0x81, 0xa2]);
        cancel.extend(b"id");
        cancel.push(5);
        assert_eq!(encode(&ClientMessage::Cancel { id: 5 }), cancel);
        let mut goodbye = vec![0, 0, 0, 10, 0x81, 0xa7];
        goodbye.extend(b"goodbye");
        goodbye.push(0x80);
        assert_eq!(encode(&ClientMessage::Goodbye {}), goodbye);
        let real = encode(&WireValue(SqlValue::Real(1.0)));
        assert_eq!(real[4], 0xcb, "a real is always a 64-bit float, even 1.0");
        let blob = encode(&WireValue(SqlValue::Blob(vec![7])));
        assert_eq!(&blob[4..], &[0xc4, 1, 7], "a blob is MessagePack binary");
    }

    #[test]
    fn change_sets_are_encoded_as_documented() {
        let changes = crate::sqlite::changes::Changes::of_tables(["todos"]);
        let frame = encode(&ChangeSet(changes));
        let bytes = &frame[4..];
        // {"tables": [{"table": "todos", "kinds": 7, "updated": "all",
        //   "rows": "unknown"}], "everything": false, "schema": true}
        let mut expected = vec![0x83, 0xa6];
        expected.extend(b"tables");
        expected.extend([0x91, 0x84, 0xa5]);
        expected.extend(b"table");
        expected.push(0xa5);
        expected.extend(b"todos");
        expected.push(0xa5);
        expected.extend(b"kinds");
        expected.extend([0x07, 0xa7]);
        expected.extend(b"updated");
        expected.push(0xa3);
        expected.extend(b"all");
        expected.push(0xa4);
        expected.extend(b"rows");
        expected.push(0xa7);
        expected.extend(b"unknown");
        expected.push(0xaa);
        expected.extend(b"everything");
        expected.extend([0xc2, 0xa6]);
        expected.extend(b"schema");
        expected.push(0xc3);
        assert_eq!(bytes, expected.as_slice());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Later {
            Cancel { id: u64, why: String },
        }
        let frame = encode(&Later::Cancel {
            id: 5,
            why: "a later version's field".into(),
        });
        assert_eq!(
            decode::<ClientMessage>(&frame[4..]).unwrap(),
            ClientMessage::Cancel { id: 5 }
        );
    }
}
