//! Crossing threads without paying for a wake-up each time.
//!
//! Waking a parked thread costs about 50 µs on the machines driftwood is
//! measured on, far more than a typical statement. So both sides of a
//! request spin briefly before they sleep: the server thread keeps polling
//! its queue for [`SPIN`] after its last request, and a client polls its
//! reply slot for up to [`SPIN`] — or up to [`LONG_SPIN`] while the server
//! thread is already running its request, whose reply is then near — before
//! it registers its waker and returns `Pending`. A busy conversation never parks; an idle server parks in a
//! blocking `recv` and burns no CPU. At most as many threads spin at once as
//! there are cores (clients one fewer, to leave the server a core); the
//! rest park at once, since extra spinners only delay the thread that would
//! make progress.
//!
//! [`reply`] makes a one-shot reply slot: the server thread fills it with
//! [`Replier::send`], the client awaits the [`Reply`] future. Dropping the
//! [`Reply`] sets the request's cancel flag, which the server checks before
//! and while it runs the request.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;

use super::alarm;
use crate::error::{Error, Result};

/// How long either side spins before it sleeps.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// How long a client spins at most for a reply to a request the server
/// thread is already running.
const LONG_SPIN: Duration = Duration::from_millis(1);

/// A request that has not started yet.
const QUEUED: u8 = 0;
/// A request the server thread has begun to run: it runs to its end.
const STARTED: u8 = 1;
/// A request whose caller stopped waiting before it started: never run.
const ABANDONED: u8 = 2;

/// Shared between one request's sender and its reply future.
struct Slot<T> {
    /// The reply; `None` until sent (or forever, if the server dropped it).
    value: Mutex<Option<T>>,
    /// Set once `value` is final: a reply arrived or the replier is gone.
    done: AtomicBool,
    /// Set when the reply future is dropped: nobody wants the result (the
    /// progress handler interrupts a running statement on it).
    cancelled: Arc<AtomicBool>,
    /// `QUEUED`, `STARTED` or `ABANDONED`: whether the server thread or a
    /// caller giving up on a queued request wins.
    state: AtomicU8,
    /// Whether the caller spins for the reply: false for requests made
    /// [`without_spinning`], whose next request comes through the caller's
    /// own wake-ups rather than right after the reply.
    caller_spins: bool,
    waker: AtomicWaker,
}

/// The server's end of a reply slot.
pub(crate) struct Replier<T> {
    slot: Arc<Slot<T>>,
}

/// The client's end of a reply slot: a future of the reply. A replier dropped
/// without sending (the server shut down) resolves it to [`Error::Closed`].
/// With a busy timeout, a request still queued that long after the future
/// first had to wait fails with [`Error::Busy`] and is never run.
pub(crate) struct Reply<T> {
    slot: Arc<Slot<T>>,
    busy_timeout: Option<Duration>,
    /// Armed the first time the future has to wait.
    timer: Option<(Instant, alarm::Alarm)>,
}

/// A connected replier and reply future; the request never times out.
pub(crate) fn reply<T>() -> (Replier<T>, Reply<T>) {
    reply_with(None)
}

/// A connected replier and reply future whose request fails with
/// [`Error::Busy`] if it is still queued `busy_timeout` after its future
/// first had to wait.
pub(crate) fn reply_with<T>(busy_timeout: Option<Duration>) -> (Replier<T>, Reply<T>) {
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        done: AtomicBool::new(false),
        cancelled: Arc::new(AtomicBool::new(false)),
        state: AtomicU8::new(QUEUED),
        waker: AtomicWaker::new(),
        caller_spins: !NO_SPIN.get(),
    });
    let reply = Reply {
        slot: slot.clone(),
        busy_timeout,
        timer: None,
    };
    (Replier { slot }, reply)
}

impl<T> Replier<T> {
    /// Delivers the reply and wakes the waiting client.
    pub(crate) fn send(self, value: T) {
        *self.slot.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        // Drop runs next and publishes `done`.
    }

    /// Marks the request as running, unless its caller already gave up on
    /// it (dropped its future, or timed out while it was queued): then it
    /// must not run, and `false` says so.
    pub(crate) fn start(&self) -> bool {
        !self.slot.cancelled.load(Ordering::Acquire)
            && self
                .slot
                .state
                .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Whether the caller gave up on the request before it started.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.slot.cancelled.load(Ordering::Acquire)
            || self.slot.state.load(Ordering::Acquire) == ABANDONED
    }

    /// The flag the running statement's progress handler watches.
    pub(crate) fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.slot.cancelled.clone()
    }
}

impl<T> Drop for Replier<T> {
    fn drop(&mut self) {
        SPIN_FOR_NEXT.set(self.slot.caller_spins);
        self.slot.done.store(true, Ordering::Release);
        self.slot.waker.wake();
    }
}

impl<T> Reply<T> {
    fn take(&self) -> Option<T> {
        self.slot
            .value
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl<T> Future for Reply<Result<T>> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let slot = self.slot.clone();
        let done = || slot.done.load(Ordering::Acquire);
        // Past the usual spin, keep spinning while the server thread is
        // running the request (its reply is near and waking from a park
        // costs more than waiting here); a request still queued behind
        // others parks, so the thread can serve other tasks meanwhile.
        let running = || slot.state.load(Ordering::Acquire) == STARTED;
        if done() || spin_until(Spinner::Client, done, running) {
            return Poll::Ready(self.take().unwrap_or(Err(Error::Closed)));
        }
        slot.waker.register(cx.waker());
        if done() {
            return Poll::Ready(self.take().unwrap_or(Err(Error::Closed)));
        }
        if let Some(error) = self.check_deadline(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Pending
    }
}

impl<T> Reply<T> {
    /// Arms the busy timeout at the first wait; once it passed, gives up on
    /// a request that has not started (a started one runs to its end).
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Option<Error> {
        let timeout = self.busy_timeout?;
        // A backstop for a thread busy with something else: a server
        // thread that can answer fails its own waiting requests at the busy
        // timeout, saying who holds the writer, so this fires a little later
        // (between 1.25 and 1.5 timeouts, sharing its alarm with the others
        // armed meanwhile).
        let (since, timer) = self.timer.get_or_insert_with(|| {
            let since = Instant::now();
            (
                since,
                alarm::after(since + timeout + timeout / 4, timeout / 4),
            )
        });
        if Pin::new(timer).poll(cx).is_pending() {
            return None;
        }
        let waited = since.elapsed();
        self.timer = None;
        self.busy_timeout = None;
        let gave_up = self
            .slot
            .state
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        gave_up.then(|| Error::Busy {
            waited_ms: waited.as_millis() as u64,
            message: "the server thread was busy with earlier requests (busy timeout)".into(),
        })
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        self.slot.cancelled.store(true, Ordering::Release);
    }
}

/// Who is spinning, which decides how many may spin at once.
#[derive(Clone, Copy)]
enum Spinner {
    /// A client awaiting a reply: spins only while a core stays free for
    /// the server threads.
    Client,
    /// A server thread awaiting its next request.
    Server,
}

/// Server threads and clients spinning right now, across all servers of
/// the process. Spinning threads beyond the number of cores only steal time
/// from the thread that would make progress, so past that, waiters park at
/// once; and clients leave a core to the server threads.
static SERVERS_SPINNING: AtomicUsize = AtomicUsize::new(0);
static CLIENTS_SPINNING: AtomicUsize = AtomicUsize::new(0);

fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A right to spin, returned when dropped.
struct Permit(&'static AtomicUsize);

impl Permit {
    fn acquire(spinner: Spinner) -> Option<Permit> {
        let (mine, theirs, own_limit) = match spinner {
            Spinner::Client => (
                &CLIENTS_SPINNING,
                &SERVERS_SPINNING,
                cores().saturating_sub(1),
            ),
            Spinner::Server => (&SERVERS_SPINNING, &CLIENTS_SPINNING, cores()),
        };
        let before = mine.fetch_add(1, Ordering::AcqRel);
        if before < own_limit && before + theirs.load(Ordering::Acquire) < cores() {
            return Some(Permit(mine));
        }
        mine.fetch_sub(1, Ordering::AcqRel);
        None
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

thread_local! {
    /// Set while a loop polls many requests' replies at once (a remote
    /// connection): a spin for one would hold up all the others.
    static NO_SPIN: Cell<bool> = const { Cell::new(false) };
    /// On a server thread: whether the caller of its last reply spins,
    /// so its next request is likely to come within a spin. After a reply
    /// to a loop that does not spin, a spin would only take a core from
    /// that loop, which has to run for the next request to come.
    static SPIN_FOR_NEXT: Cell<bool> = const { Cell::new(true) };
}

/// Polls with `poll` (or makes requests) without spinning for replies on
/// this thread: a reply not ready registers its waker at once, and the
/// server thread does not spin for the next request after answering.
#[cfg(feature = "remote")]
pub(crate) fn without_spinning<R>(poll: impl FnOnce() -> R) -> R {
    let before = NO_SPIN.replace(true);
    let result = poll();
    NO_SPIN.set(before);
    result
}

/// Spins until `ready` holds, if a spin permit is free: for [`SPIN`], and
/// up to [`LONG_SPIN`] while `worth_waiting` holds. Says whether `ready`
/// came to hold.
fn spin_until(
    spinner: Spinner,
    mut ready: impl FnMut() -> bool,
    mut worth_waiting: impl FnMut() -> bool,
) -> bool {
    if matches!(spinner, Spinner::Client) && NO_SPIN.get() {
        return ready();
    }
    let Some(_permit) = Permit::acquire(spinner) else {
        return ready();
    };
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        if ready() {
            return true;
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            let spun = start.elapsed();
            if spun >= LONG_SPIN || (spun >= SPIN && !worth_waiting()) {
                return false;
            }
        }
        std::hint::spin_loop();
    }
}

/// What waiting for the next message gave.
pub(crate) enum Next<T> {
    /// A message.
    Message(T),
    /// The deadline passed first.
    Timeout,
    /// Every sender is gone.
    Gone,
}

/// Takes the next message: spins for [`SPIN`] on an empty queue (unless
/// the last reply went to a caller that does not spin), then blocks until
/// a message arrives or `deadline` passes.
pub(crate) fn next<T>(queue: &Receiver<T>, deadline: Option<Instant>) -> Next<T> {
    match queue.try_recv() {
        Ok(message) => return Next::Message(message),
        Err(TryRecvError::Disconnected) => return Next::Gone,
        Err(TryRecvError::Empty) if !SPIN_FOR_NEXT.get() => return block(queue, deadline),
        Err(TryRecvError::Empty) => {}
    }
    let mut message = None;
    let mut gone = false;
    let no_reason_to_wait_longer = || false;
    spin_until(
        Spinner::Server,
        || {
            match queue.try_recv() {
                Ok(m) => message = Some(m),
                Err(TryRecvError::Disconnected) => gone = true,
                Err(TryRecvError::Empty) => return false,
            }
            true
        },
        no_reason_to_wait_longer,
    );
    if gone {
        return Next::Gone;
    }
    if let Some(message) = message {
        return Next::Message(message);
    }
    block(queue, deadline)
}

/// Blocks until a message arrives or `deadline` passes.
fn block<T>(queue: &Receiver<T>, deadline: Option<Instant>) -> Next<T> {
    let Some(deadline) = deadline else {
        return queue.recv().map_or(Next::Gone, Next::Message);
    };
    match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(message) => Next::Message(message),
        Err(RecvTimeoutError::Timeout) => Next::Timeout,
        Err(RecvTimeoutError::Disconnected) => Next::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_cross_threads_and_dropped_repliers_mean_closed() {
        let (replier, answer) = reply::<Result<u32>>();
        let server = std::thread::spawn(move || replier.send(Ok(7)));
        assert_eq!(futures::executor::block_on(answer), Ok(7));
        server.join().unwrap();

        let (replier, answer) = reply::<Result<u32>>();
        drop(replier);
        assert_eq!(futures::executor::block_on(answer), Err(Error::Closed));
    }

    #[test]
    fn a_dropped_reply_cancels_the_request() {
        let (replier, answer) = reply::<Result<u32>>();
        let cancelled = replier.cancel_flag();
        assert!(!cancelled.load(Ordering::Acquire));
        drop(answer);
        assert!(cancelled.load(Ordering::Acquire));
    }

    #[test]
    fn a_late_reply_wakes_the_parked_client() {
        let (replier, answer) = reply::<Result<u32>>();
        let server = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            replier.send(Ok(1));
        });
        assert_eq!(futures::executor::block_on(answer), Ok(1));
        server.join().unwrap();
    }
}
