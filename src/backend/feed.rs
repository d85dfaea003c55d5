//! [`Feed`]: one database's change feed — where committed changes are
//! published and watched queries learn that they must look again.
//!
//! Every database (an in-thread one, a server and all its clients) has one
//! feed. The connection that writes publishes each committed transaction's
//! [`Changes`] through it right after `COMMIT` returned (so a query started
//! after that sees the new rows), with the next sequence number; a rollback
//! publishes nothing. Watched queries hold an [`Interest`]: the read set of
//! their last run, indexed by table, and the sequence number of the latest
//! commit that may have changed their result. Publishing marks and wakes
//! only the interests whose read set the changes touch, so a write to one
//! table never disturbs watchers of another. Listeners of raw table updates
//! get one item per committed transaction.
//!
//! The feed's [`Switch`] tells the database's connections whether anyone
//! watches, so nothing is tracked while nobody does.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};

use crate::sqlite::changes::{Changes, ReadSet, RowKeys, Switch};
use crate::sqlite::{TableUpdate, UpdateKind};

/// How many recent commits the feed remembers, so that a query whose read
/// set grew while it ran can tell whether it missed one of them.
const RECENT: usize = 64;

/// One database's change feed.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    switch: Arc<Switch>,
    /// The sequence number of the last published commit.
    seq: AtomicU64,
    closed: AtomicBool,
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    interests: HashMap<u64, Arc<Interest>>,
    /// Interests by the tables they read.
    by_table: HashMap<String, Vec<u64>>,
    /// Interests any change may concern (no run yet, or unknown reads).
    anything: Vec<u64>,
    /// The last commits, newest last.
    recent: VecDeque<(u64, Arc<Changes>)>,
    listeners: HashMap<u64, Listener>,
    /// Whoever passes every commit's whole changes on (a remote client's
    /// connection), by id, with the handle it relays for.
    relays: HashMap<u64, (UnboundedSender<Arc<Changes>>, usize)>,
}

#[derive(Debug)]
struct Listener {
    filter: UpdateFilter,
    sender: UnboundedSender<TableUpdates>,
    /// The handle (client) it listens through.
    owner: usize,
}

/// A watched query's stake in the feed.
#[derive(Debug)]
pub(crate) struct Interest {
    id: u64,
    /// The sequence number of the latest commit that may have changed the
    /// query's result.
    dirty: AtomicU64,
    /// What the query read on its last run; `None` before it ran.
    reads: Mutex<Option<ReadSet>>,
    /// The only rows of one table it reads, when its filter says so (and
    /// the file agrees about which column is the rowid).
    keys: Mutex<Option<RowKeys>>,
    wakers: Mutex<Vec<Waker>>,
}

/// The changes of one committed transaction, for listeners of
/// [`table_updates`](crate::Db::table_updates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUpdates {
    /// The commit's sequence number: one more than the commit before it.
    pub seq: u64,
    /// Each table changed, once per kind of change, in the order they were
    /// first changed. Empty when the change is unknown (a write by another
    /// process): assume anything changed.
    pub updates: Vec<TableUpdate>,
}

/// Which table updates a listener wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateFilter {
    tables: Vec<String>,
    kinds: Vec<UpdateKind>,
}

impl UpdateFilter {
    /// Every update of every table.
    pub fn all() -> Self {
        UpdateFilter::default()
    }

    /// Updates of `table` (callable again for more tables).
    pub fn on(mut self, table: &str) -> Self {
        self.tables.push(table.to_ascii_lowercase());
        self
    }

    /// Updates of `kind` (callable again for more kinds).
    pub fn of_kind(mut self, kind: UpdateKind) -> Self {
        self.kinds.push(kind);
        self
    }

    fn wants(&self, update: &TableUpdate) -> bool {
        (self.tables.is_empty() || self.tables.contains(&update.table))
            && (self.kinds.is_empty() || self.kinds.contains(&update.kind))
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Feed {
    pub(crate) fn new() -> Arc<Feed> {
        Arc::new(Feed::default())
    }

    /// What the database's connections consult to know whether anyone
    /// watches.
    pub(crate) fn switch(&self) -> Arc<Switch> {
        self.switch.clone()
    }

    /// The switch, borrowed (no reference count moves).
    pub(crate) fn switch_ref(&self) -> &Switch {
        &self.switch
    }

    /// The sequence number of the last published commit: a query started
    /// after reading it sees every commit up to it.
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A new interest, which every change concerns until its first run
    /// (only changes of the rows `keys`, if given, once it ran).
    pub(crate) fn subscribe(&self, keys: Option<RowKeys>) -> Arc<Interest> {
        let mut registry = locked(&self.registry);
        registry.next_id += 1;
        if keys.is_some() {
            self.switch.watch_rows();
        }
        let keys = Mutex::new(keys);
        let interest = Arc::new(Interest {
            id: registry.next_id,
            dirty: AtomicU64::new(0),
            reads: Mutex::new(None),
            keys,
            wakers: Mutex::new(Vec::new()),
        });
        registry.anything.push(interest.id);
        registry.interests.insert(interest.id, interest.clone());
        self.switch.watch();
        interest
    }

    /// Forgets `interest`.
    pub(crate) fn unsubscribe(&self, interest: &Interest) {
        let mut registry = locked(&self.registry);
        if registry.interests.remove(&interest.id).is_none() {
            return;
        }
        registry.unindex(interest);
        if locked(&interest.keys).is_some() {
            self.switch.unwatch_rows();
        }
        self.switch.unwatch();
    }

    /// Sets what `interest`'s query read on a run that saw every commit up
    /// to `seen`; a later commit (still remembered) that touches the new
    /// read set marks it, and one too old to check marks it anyway. If its
    /// rowid column turned out not to be the rowid (`keys_hold` false),
    /// it reads every row from now on.
    pub(crate) fn set_reads(
        &self,
        interest: &Interest,
        reads: ReadSet,
        seen: u64,
        keys_hold: bool,
    ) {
        let mut registry = locked(&self.registry);
        if !registry.interests.contains_key(&interest.id) {
            return;
        }
        if !keys_hold && locked(&interest.keys).take().is_some() {
            self.switch.unwatch_rows();
        }
        registry.unindex(interest);
        match reads.tables() {
            None => registry.anything.push(interest.id),
            Some(tables) => {
                for table in tables {
                    registry
                        .by_table
                        .entry(table.to_owned())
                        .or_default()
                        .push(interest.id);
                }
            }
        }
        let oldest_remembered = registry.recent.front().map_or(u64::MAX, |(seq, _)| *seq);
        let latest = self.seq();
        let missed = registry
            .recent
            .iter()
            .filter(|(seq, changes)| {
                *seq > seen && reads.affected_by(changes, locked(&interest.keys).as_ref())
            })
            .map(|(seq, _)| *seq)
            .max();
        *locked(&interest.reads) = Some(reads);
        if let Some(seq) = missed {
            interest.mark(seq);
        } else if latest > seen && oldest_remembered > seen + 1 {
            interest.mark(latest);
        }
    }

    /// Publishes one committed transaction's changes: gives it the next
    /// sequence number, marks and wakes the interests it concerns and
    /// tells the listeners. Returns the sequence number.
    pub(crate) fn publish(&self, changes: Changes) -> u64 {
        let mut registry = locked(&self.registry);
        let seq = self.seq.load(Ordering::SeqCst) + 1;
        if changes.changes_schema() {
            self.switch.schema_changed();
        }
        self.seq.store(seq, Ordering::SeqCst);
        let changes = Arc::new(changes);
        let mut concerned: Vec<u64> = registry.anything.clone();
        if changes.is_everything() {
            concerned.extend(registry.interests.keys());
        } else {
            for table in changes.tables() {
                if let Some(ids) = registry.by_table.get(table) {
                    concerned.extend(ids);
                }
            }
        }
        concerned.sort_unstable();
        concerned.dedup();
        for id in concerned {
            let Some(interest) = registry.interests.get(&id) else {
                continue;
            };
            let affected = locked(&interest.reads)
                .as_ref()
                .is_none_or(|reads| reads.affected_by(&changes, locked(&interest.keys).as_ref()));
            if affected {
                interest.mark(seq);
            }
        }
        registry.tell_listeners(seq, &changes);
        if registry.recent.len() == RECENT {
            registry.recent.pop_front();
        }
        registry.recent.push_back((seq, changes));
        seq
    }

    /// A new listener, through handle `owner`, of every committed
    /// transaction's updates that `filter` wants.
    pub(crate) fn listen(
        &self,
        filter: UpdateFilter,
        owner: usize,
    ) -> (u64, UnboundedReceiver<TableUpdates>) {
        let (sender, receiver) = unbounded();
        let mut registry = locked(&self.registry);
        registry.next_id += 1;
        let id = registry.next_id;
        if !self.is_closed() {
            registry.listeners.insert(
                id,
                Listener {
                    filter,
                    sender,
                    owner,
                },
            );
            self.switch.watch();
        }
        (id, receiver)
    }

    /// A new relay, through handle `owner`, of every committed
    /// transaction's whole changes (what a remote client's own feed
    /// publishes again); ended by [`Feed::unlisten`].
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn relay(&self, owner: usize) -> (u64, UnboundedReceiver<Arc<Changes>>) {
        let (sender, receiver) = unbounded();
        let mut registry = locked(&self.registry);
        registry.next_id += 1;
        let id = registry.next_id;
        if !self.is_closed() {
            registry.relays.insert(id, (sender, owner));
            self.switch.watch();
        }
        (id, receiver)
    }

    /// Forgets listener or relay `id`.
    pub(crate) fn unlisten(&self, id: u64) {
        let mut registry = locked(&self.registry);
        if registry.listeners.remove(&id).is_some() || registry.relays.remove(&id).is_some() {
            self.switch.unwatch();
        }
    }

    /// Handle `owner` (a client) closed: its listeners' streams end, and
    /// every watcher is woken to look again (its own end, the others find
    /// nothing new).
    pub(crate) fn handle_closed(&self, owner: usize) {
        let mut registry = locked(&self.registry);
        let before = registry.listeners.len();
        registry
            .listeners
            .retain(|_, listener| listener.owner != owner);
        let before_relays = registry.relays.len();
        registry.relays.retain(|_, (_, relayed)| *relayed != owner);
        let ended = before - registry.listeners.len() + before_relays - registry.relays.len();
        for _ in 0..ended {
            self.switch.unwatch();
        }
        drop(registry);
        self.wake_all();
    }

    fn wake_all(&self) {
        for interest in locked(&self.registry).interests.values() {
            interest.wake();
        }
    }

    /// The database closed: every watcher is woken to find out, and every
    /// listener's stream ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut registry = locked(&self.registry);
        let listeners = std::mem::take(&mut registry.listeners);
        let relays = std::mem::take(&mut registry.relays);
        for _ in 0..listeners.len() + relays.len() {
            self.switch.unwatch();
        }
        drop(registry);
        self.wake_all();
    }
}

impl Registry {
    fn unindex(&mut self, interest: &Interest) {
        let id = interest.id;
        self.anything.retain(|other| *other != id);
        let Some(reads) = locked(&interest.reads).take() else {
            return;
        };
        for table in reads.tables().into_iter().flatten() {
            if let Some(ids) = self.by_table.get_mut(table) {
                ids.retain(|other| *other != id);
                if ids.is_empty() {
                    self.by_table.remove(table);
                }
            }
        }
    }

    fn tell_listeners(&mut self, seq: u64, changes: &Arc<Changes>) {
        // A relay ends by `unlisten` only, which keeps the switch's count.
        for (relay, _) in self.relays.values() {
            let _ = relay.unbounded_send(changes.clone());
        }
        if self.listeners.is_empty() {
            return;
        }
        let updates = changes.updates();
        self.listeners.retain(|_, listener| {
            let wanted: Vec<TableUpdate> = updates
                .iter()
                .filter(|update| listener.filter.wants(update))
                .cloned()
                .collect();
            if wanted.is_empty() && !changes.is_everything() {
                return true;
            }
            listener
                .sender
                .unbounded_send(TableUpdates {
                    seq,
                    updates: wanted,
                })
                .is_ok()
        });
    }
}

impl Interest {
    /// The sequence number of the latest commit that may have changed the
    /// query's result (0: none yet).
    pub(crate) fn dirty(&self) -> u64 {
        self.dirty.load(Ordering::SeqCst)
    }

    /// Commit `seq` may have changed the result: wakes every stream of
    /// the query.
    fn mark(&self, seq: u64) {
        self.dirty.fetch_max(seq, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        for waker in std::mem::take(&mut *locked(&self.wakers)) {
            waker.wake();
        }
    }

    /// Wakes `waker` at the next change or when the database closes.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut wakers = locked(&self.wakers);
        if !wakers.iter().any(|known| known.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read set of a query reading `column` of `table`.
    fn reading(table: &str, column: &str) -> ReadSet {
        let mut footprint = crate::sqlite::changes::Footprint::default();
        footprint.note(
            &rusqlite::hooks::AuthAction::Read {
                table_name: table,
                column_name: column,
            },
            None,
        );
        let mut reads = ReadSet::default();
        reads.add(&footprint);
        reads
    }

    #[test]
    fn publishing_numbers_commits_and_tells_filtered_listeners() {
        let feed = Feed::new();
        let (_, mut todos) = feed.listen(UpdateFilter::all().on("todos"), 0);
        let (_, mut everything) = feed.listen(UpdateFilter::all(), 0);
        assert_eq!(feed.publish(Changes::of_tables(["categories"])), 1);
        assert_eq!(feed.publish(Changes::of_tables(["Todos"])), 2);
        let first = todos.try_recv().unwrap();
        assert_eq!(first.seq, 2, "the categories commit is filtered out");
        assert_eq!(first.updates.len(), 3, "insert, update and delete");
        assert_eq!(everything.try_recv().unwrap().seq, 1);
        assert_eq!(everything.try_recv().unwrap().seq, 2);
        feed.close();
        assert!(
            todos.try_recv().unwrap_err().is_closed(),
            "closing ends listeners"
        );
    }

    #[test]
    fn an_interest_is_marked_only_by_changes_to_what_it_read() {
        let feed = Feed::new();
        let interest = feed.subscribe(None);
        assert_eq!(feed.publish(Changes::of_tables(["categories"])), 1);
        assert_eq!(
            interest.dirty(),
            1,
            "before its first run, anything matters"
        );
        feed.set_reads(&interest, reading("todos", "title"), 1, true);
        feed.publish(Changes::of_tables(["categories"]));
        assert_eq!(interest.dirty(), 1);
        feed.publish(Changes::of_tables(["todos"]));
        assert_eq!(interest.dirty(), 3);
        feed.unsubscribe(&interest);
        feed.publish(Changes::of_tables(["todos"]));
        assert_eq!(interest.dirty(), 3, "a forgotten interest is never marked");
    }

    #[test]
    fn a_read_set_that_grew_while_its_query_ran_catches_up() {
        let feed = Feed::new();
        let interest = feed.subscribe(None);
        feed.set_reads(&interest, ReadSet::default(), 0, true);
        feed.publish(Changes::of_tables(["todos"]));
        assert_eq!(interest.dirty(), 0, "it read nothing");
        feed.set_reads(&interest, reading("todos", ""), 0, true);
        assert_eq!(interest.dirty(), 1, "commit 1 touched what the run read");
    }
}
