//! A connection's outgoing frames, written while its loop goes on reading
//! and running requests.
//!
//! The loop queues encoded frames and [`Outbox::start`]s a write; the write
//! runs as a future the loop polls through [`Outbox::written`], and frames
//! queued meanwhile go out together in the next write. A client that stops
//! reading leaves a write unfinished: the queue then fills to
//! [`QUEUE_LIMIT`], [`Outbox::is_full`] tells the loop to stop reading
//! requests, and a write during which the client takes no bytes for the
//! timeout ends the connection (a slow reader that keeps reading is never
//! cut off).

use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::wire;
use crate::error::Result;

/// Bytes queued behind an unfinished write past which the connection reads
/// no more requests.
const QUEUE_LIMIT: usize = 1 << 20;

/// A write in progress gives the writer and the buffer back when it ends.
type Write<W> = BoxFuture<'static, (W, Vec<u8>, Result<()>)>;

/// Frames queued for a writer, and the write in progress.
pub(crate) struct Outbox<W> {
    /// Frames not yet handed to a write.
    queued: Vec<u8>,
    /// The writer while no write runs.
    idle: Option<W>,
    writing: Option<Write<W>>,
    /// A buffer of an earlier write, kept for reuse.
    spare: Vec<u8>,
    /// How long a write may go without the client taking any bytes.
    timeout: Duration,
}

impl<W: AsyncWrite + Send + Unpin + 'static> Outbox<W> {
    /// An empty outbox over `writer`, whose writes fail once the client
    /// takes nothing for `timeout`.
    pub(crate) fn new(writer: W, timeout: Duration) -> Self {
        Outbox {
            queued: Vec::new(),
            idle: Some(writer),
            writing: None,
            spare: Vec::new(),
            timeout,
        }
    }

    /// The queue, to append encoded frames to.
    pub(crate) fn queue(&mut self) -> &mut Vec<u8> {
        &mut self.queued
    }

    /// Whether so much waits behind an unfinished write that the loop
    /// should read no more requests.
    pub(crate) fn is_full(&self) -> bool {
        self.queued.len() >= QUEUE_LIMIT
    }

    /// Whether a write is in progress.
    pub(crate) fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Starts writing what is queued, unless a write is in progress (the
    /// queue then goes out when it ends) or nothing is queued.
    pub(crate) fn start(&mut self) {
        if self.queued.is_empty() || self.writing.is_some() {
            return;
        }
        let Some(mut writer) = self.idle.take() else {
            return;
        };
        let mut frames = std::mem::take(&mut self.spare);
        std::mem::swap(&mut frames, &mut self.queued);
        let timeout = self.timeout;
        self.writing = Some(
            async move {
                let result = write_steadily(&mut writer, &frames, timeout).await;
                (writer, frames, result)
            }
            .boxed(),
        );
    }

    /// Resolves when the write in progress ends, having started the next
    /// one if frames were queued meanwhile; an error ends the connection.
    /// Cancel-safe: dropped, the write goes on at the next call.
    pub(crate) async fn written(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_written(cx)).await
    }

    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.writing.is_none() {
            return Poll::Pending;
        }
        std::task::ready!(self.poll_ended(cx))?;
        self.start();
        Poll::Ready(Ok(()))
    }

    /// The writer and the frames still queued, once the write in progress
    /// ended, waiting at most `patience` for it; `None` if it did not end
    /// in time or failed.
    pub(crate) async fn into_parts(mut self, patience: Duration) -> Option<(W, Vec<u8>)> {
        let ended = tokio::time::timeout(patience, poll_fn(|cx| self.poll_ended(cx))).await;
        if !matches!(ended, Ok(Ok(()))) {
            return None;
        }
        Some((self.idle?, self.queued))
    }

    /// Waits for the write in progress, if any, and takes the writer and
    /// the buffer back.
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(writing) = self.writing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let (writer, mut frames, result) = std::task::ready!(writing.poll_unpin(cx));
        self.writing = None;
        frames.clear();
        self.spare = frames;
        self.idle = Some(writer);
        Poll::Ready(result)
    }
}

/// Writes `bytes` and flushes, failing once the client takes nothing for
/// `timeout`: a slow client that keeps reading is never cut off, however
/// long the whole write takes.
async fn write_steadily<W>(writer: &mut W, bytes: &[u8], timeout: Duration) -> Result<()>
where
    W: AsyncWrite + Unpin,
{
    let stuck = || {
        wire::protocol(format!(
            "the client took no reply for {timeout:?}; dropping the connection"
        ))
    };
    let failed =
        |error: std::io::Error| wire::protocol(format!("writing to the client failed: {error}"));
    let mut rest = bytes;
    while !rest.is_empty() {
        let written = tokio::time::timeout(timeout, writer.write(rest))
            .await
            .map_err(|_| stuck())?
            .map_err(failed)?;
        if written == 0 {
            return Err(failed(std::io::ErrorKind::WriteZero.into()));
        }
        rest = &rest[written..];
    }
    tokio::time::timeout(timeout, writer.flush())
        .await
        .map_err(|_| stuck())?
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn frames_queued_during_a_write_go_out_next_and_a_stuck_reader_fills_the_queue() {
        let (writer, mut reader) = tokio::io::duplex(64);
        let mut outbox = Outbox::new(writer, Duration::from_secs(5));
        outbox.queue().extend_from_slice(&[1; 100]);
        outbox.start();
        assert!(outbox.is_writing());
        outbox.queue().extend_from_slice(&[2; 10]);
        outbox.start();
        let mut first = vec![0; 100];
        let (read, written) = tokio::join!(reader.read_exact(&mut first), outbox.written());
        read.unwrap();
        written.unwrap();
        assert_eq!(first, vec![1; 100]);
        assert!(
            outbox.is_writing(),
            "what was queued meanwhile went out next"
        );
        let mut second = vec![0; 10];
        let (read, written) = tokio::join!(reader.read_exact(&mut second), outbox.written());
        read.unwrap();
        written.unwrap();
        assert_eq!(second, vec![2; 10]);
        assert!(!outbox.is_writing());

        // Nobody reads: the write stays unfinished and the queue fills.
        outbox.queue().extend_from_slice(&[3; 1000]);
        outbox.start();
        assert!(!outbox.is_full());
        outbox.queue().extend(std::iter::repeat_n(4, QUEUE_LIMIT));
        assert!(outbox.is_full());
        let parts = outbox.into_parts(Duration::from_millis(50)).await;
        assert!(parts.is_none(), "an unfinished write gives no writer back");
    }

    #[tokio::test]
    async fn a_write_nobody_takes_fails_after_its_timeout() {
        let (writer, _reader) = tokio::io::duplex(16);
        let mut outbox = Outbox::new(writer, Duration::from_millis(50));
        outbox.queue().extend_from_slice(&[0; 100]);
        outbox.start();
        let error = outbox.written().await.unwrap_err();
        assert!(error.to_string().contains("took no reply"), "{error}");
    }
}
