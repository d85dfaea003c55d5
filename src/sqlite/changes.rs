//! What statements read and write, and what a transaction changed: the raw
//! material of auto-updating queries, found where the connection lives with
//! nothing declared by the user.
//!
//! SQLite's authorizer reports, while a statement is prepared, every table
//! and column it reads and every table it writes — through views, triggers
//! and foreign-key actions too, since they are compiled into the statement.
//! It is not called again when a cached statement runs, so a statement's
//! [`Footprint`] is found once per SQL text, by preparing it apart, and kept
//! in a map of the connection's own. A committed schema change makes every
//! connection of the database forget its map ([`Switch`]'s schema
//! generation): a new trigger or view changes what a statement touches.
//!
//! What a transaction changed ([`Changes`]) is the union of the write
//! footprints of its statements that changed rows (`total_changes` moved)
//! or the schema, kept per transaction level: releasing a savepoint merges
//! its changes into its parent, rolling one back discards them, and only a
//! committed outermost level (or a statement in autocommit) hands them on.
//! Writes to `WITHOUT ROWID` tables, `DELETE FROM t` and rows a `REPLACE`
//! conflict deletes — which `update_hook` misses — are seen like any other.
//!
//! Nothing is looked up while nobody watches. A transaction during which
//! watching began reports that it may have changed anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};

/// How a committed transaction changed a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpdateKind {
    /// Rows were inserted.
    Insert,
    /// Rows were updated.
    Update,
    /// Rows were deleted.
    Delete,
    /// The table, or an index, trigger or view on it, was created, altered
    /// or dropped.
    Schema,
}

impl UpdateKind {
    const ALL: [UpdateKind; 4] = [
        UpdateKind::Insert,
        UpdateKind::Update,
        UpdateKind::Delete,
        UpdateKind::Schema,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// One table a committed transaction changed, and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableUpdate {
    /// The table's name, lowercase.
    pub table: String,
    /// How it changed.
    pub kind: UpdateKind,
}

/// Some columns of a table, or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Columns {
    /// Every column (or columns nobody can name: a `count(*)`).
    All,
    /// These columns, lowercase.
    Only(Vec<String>),
}

impl Columns {
    fn add(&mut self, column: &str) {
        let Columns::Only(columns) = self else { return };
        // A read of no particular column (`count(*)`), or the rowid by one
        // of its names, which selects name by the alias column instead.
        if column.is_empty()
            || ["rowid", "oid", "_rowid_"]
                .iter()
                .any(|r| r.eq_ignore_ascii_case(column))
        {
            *self = Columns::All;
            return;
        }
        if !columns.iter().any(|c| c.eq_ignore_ascii_case(column)) {
            columns.push(column.to_ascii_lowercase());
        }
    }

    fn merge(&mut self, other: &Columns) {
        match other {
            Columns::All => *self = Columns::All,
            Columns::Only(columns) => columns.iter().for_each(|c| self.add(c)),
        }
    }

    fn overlaps(&self, other: &Columns) -> bool {
        match (self, other) {
            (Columns::Only(a), Columns::Only(b)) => a.iter().any(|c| b.contains(c)),
            _ => true,
        }
    }
}

/// How many rowids one table's change remembers before it counts as a
/// change of any row (a bulk write stays cheap to publish and to match).
const MAX_ROWIDS: usize = 10_000;

/// The rowids a change touched, when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Rows {
    /// Any row may have changed.
    Unknown,
    /// Only these rows changed.
    Only(Vec<i64>),
}

impl Rows {
    fn merge(&mut self, other: &Rows) {
        match (&mut *self, other) {
            (Rows::Only(rows), Rows::Only(more)) if rows.len() + more.len() <= MAX_ROWIDS => {
                rows.extend(more)
            }
            _ => *self = Rows::Unknown,
        }
    }
}

/// The rowids of one table a watched query reads: it can see a change
/// only of those rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowKeys {
    /// Lowercase.
    pub(crate) table: String,
    /// The column the code believes is the rowid (checked on the file).
    pub(crate) column: String,
    pub(crate) keys: Vec<i64>,
}

/// The rowids the update hook reported during a statement, per table;
/// `None` once there were too many to keep.
pub(crate) type ReportedRows = Vec<(String, Option<Vec<i64>>)>;

/// Notes one row the update hook reported.
pub(crate) fn report_row(log: &mut ReportedRows, table: &str, rowid: i64) {
    match log.iter_mut().find(|(t, _)| t == table) {
        Some((_, Some(rows))) if rows.len() < MAX_ROWIDS => rows.push(rowid),
        Some((_, rows)) => *rows = None,
        None => log.push((table.to_owned(), Some(vec![rowid]))),
    }
}

/// How one table was (or may be) changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableChange {
    /// Lowercase.
    table: String,
    /// [`UpdateKind::bit`]s.
    kinds: u8,
    /// The columns an `UPDATE` set.
    updated: Columns,
    /// The rows changed.
    rows: Rows,
}

impl TableChange {
    fn new(table: &str) -> Self {
        TableChange {
            table: table.to_ascii_lowercase(),
            kinds: 0,
            updated: Columns::Only(Vec::new()),
            rows: Rows::Only(Vec::new()),
        }
    }

    fn merge(&mut self, other: &TableChange) {
        self.kinds |= other.kinds;
        self.updated.merge(&other.updated);
        self.rows.merge(&other.rows);
    }

    /// Whether a query reading `columns` of this table (only the rows
    /// `keys`, if given) may see a different result after this change.
    fn affects(&self, columns: &Columns, keys: Option<&[i64]>) -> bool {
        if self.kinds & UpdateKind::Schema.bit() != 0 {
            return true;
        }
        let reshapes = UpdateKind::Insert.bit() | UpdateKind::Delete.bit();
        let relevant = self.kinds & reshapes != 0
            || (self.kinds & UpdateKind::Update.bit() != 0 && self.updated.overlaps(columns));
        match (keys, &self.rows) {
            (Some(keys), Rows::Only(rows)) => relevant && rows.iter().any(|r| keys.contains(r)),
            _ => relevant,
        }
    }
}

/// Finds a table's entry in `tables`, adding an empty one if needed.
fn entry<'t>(tables: &'t mut Vec<TableChange>, table: &str) -> &'t mut TableChange {
    match tables
        .iter()
        .position(|t| t.table.eq_ignore_ascii_case(table))
    {
        Some(at) => &mut tables[at],
        None => {
            tables.push(TableChange::new(table));
            tables.last_mut().expect("just pushed")
        }
    }
}

/// What a statement reads and writes, as the authorizer reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Footprint {
    /// Tables (and views) read, with the columns read.
    reads: Vec<(String, Columns)>,
    /// Tables written.
    writes: Vec<TableChange>,
    /// Whether it creates, alters or drops something.
    schema: bool,
    /// Whether the rowids the update hook reports are all the rows it
    /// changes (not when a `REPLACE` conflict may delete rows unreported,
    /// or an `UPDATE` may change a rowid, reported only as the new one).
    rows_trusted: bool,
    /// Whether it changes anything beyond rows and schema: SQLite says it
    /// is not read-only (`VACUUM`, pragmas that set), or it attaches,
    /// detaches or sets a pragma.
    other_writes: bool,
    /// Whether a trigger it fires deletes rows (perhaps unreported).
    trigger_deletes: bool,
    /// Why a remote client may not run it (see `policy`), if so.
    remote_refusal: Option<String>,
}

impl Footprint {
    /// Notes one authorizer report. `accessor` is the view or trigger the
    /// access comes from, if any.
    pub(crate) fn note(
        &mut self,
        action: &rusqlite::hooks::AuthAction<'_>,
        accessor: Option<&str>,
    ) {
        use rusqlite::hooks::AuthAction as A;
        if let Some(view_or_trigger) = accessor
            && matches!(action, A::Read { .. })
        {
            self.read(view_or_trigger, "");
        }
        // A trigger's `DELETE FROM t` may use SQLite's truncate, which
        // reports no rows to the update hook.
        if accessor.is_some() && matches!(action, A::Delete { .. }) {
            self.trigger_deletes = true;
        }
        if self.remote_refusal.is_none() {
            self.remote_refusal = super::policy::refusal(action);
        }
        match *action {
            A::Read {
                table_name,
                column_name,
            } => self.read(table_name, column_name),
            A::Insert { table_name } => self.write(table_name, UpdateKind::Insert, None),
            A::Delete { table_name } => self.write(table_name, UpdateKind::Delete, None),
            A::Update {
                table_name,
                column_name,
            } => self.write(table_name, UpdateKind::Update, Some(column_name)),
            A::CreateTable { table_name }
            | A::CreateTempTable { table_name }
            | A::DropTable { table_name }
            | A::DropTempTable { table_name }
            | A::AlterTable { table_name, .. }
            | A::CreateVtable { table_name, .. }
            | A::DropVtable { table_name, .. } => self.reshape(table_name),
            A::CreateView { view_name }
            | A::CreateTempView { view_name }
            | A::DropView { view_name }
            | A::DropTempView { view_name } => self.reshape(view_name),
            A::Attach { .. }
            | A::Detach { .. }
            | A::Pragma {
                pragma_value: Some(_),
                ..
            } => self.other_writes = true,
            A::CreateIndex { .. }
            | A::CreateTempIndex { .. }
            | A::DropIndex { .. }
            | A::DropTempIndex { .. }
            | A::CreateTrigger { .. }
            | A::CreateTempTrigger { .. }
            | A::DropTrigger { .. }
            | A::DropTempTrigger { .. } => self.schema = true,
            _ => {}
        }
    }

    fn read(&mut self, table: &str, column: &str) {
        let at = match self
            .reads
            .iter()
            .position(|(t, _)| t.eq_ignore_ascii_case(table))
        {
            Some(at) => at,
            None => {
                self.reads
                    .push((table.to_ascii_lowercase(), Columns::Only(Vec::new())));
                self.reads.len() - 1
            }
        };
        self.reads[at].1.add(column);
    }

    fn write(&mut self, table: &str, kind: UpdateKind, column: Option<&str>) {
        let change = entry(&mut self.writes, table);
        change.rows = Rows::Unknown;
        change.kinds |= kind.bit();
        if let Some(column) = column {
            change.updated.add(column);
        }
    }

    fn reshape(&mut self, table: &str) {
        self.schema = true;
        self.write(table, UpdateKind::Schema, None);
    }

    /// Counts every `UPDATE` as a possible delete too: a `REPLACE`
    /// conflict (from `OR REPLACE` or a table's constraint) deletes rows
    /// no authorizer report mentions.
    pub(crate) fn updates_may_delete(&mut self) {
        for change in &mut self.writes {
            if change.kinds & UpdateKind::Update.bit() != 0 {
                change.kinds |= UpdateKind::Delete.bit();
            }
        }
    }

    /// Counts an `UPDATE` of `table` as an update of every column (its
    /// generated columns follow others; a virtual table's columns are its
    /// module's).
    pub(crate) fn updates_every_column(&mut self, table: &str) {
        if let Some(change) = self.writes.iter_mut().find(|c| c.table == table) {
            change.updated = Columns::All;
        }
    }

    /// Trusts the rowids the update hook reports for this statement,
    /// unless a trigger it fires deletes rows.
    pub(crate) fn trust_rows(&mut self) {
        self.rows_trusted = !self.trigger_deletes;
    }

    /// The tables this statement writes.
    pub(crate) fn written_tables(&self) -> impl Iterator<Item = &str> {
        self.writes.iter().map(|c| c.table.as_str())
    }

    /// The columns an `UPDATE` of this statement sets in `table`.
    pub(crate) fn updated_columns(&self, table: &str) -> &[String] {
        match self
            .writes
            .iter()
            .find(|c| c.table == table)
            .map(|c| &c.updated)
        {
            Some(Columns::Only(columns)) => columns,
            _ => &[],
        }
    }

    /// The tables an `UPDATE` of this statement writes.
    pub(crate) fn updated_tables(&self) -> impl Iterator<Item = &str> {
        self.writes
            .iter()
            .filter(|c| c.kinds & UpdateKind::Update.bit() != 0)
            .map(|c| c.table.as_str())
    }

    /// Whether it creates, alters or drops something.
    pub(crate) fn changes_schema(&self) -> bool {
        self.schema
    }

    /// SQLite says the statement is not read-only.
    pub(crate) fn not_read_only(&mut self) {
        self.other_writes = true;
    }

    /// Why a remote client may not run it, if so.
    pub(crate) fn remote_refusal(&self) -> Option<&str> {
        self.remote_refusal.as_deref()
    }

    /// Whether it writes rows, the schema, or anything else.
    pub(crate) fn writes_anything(&self) -> bool {
        self.schema || self.other_writes || !self.writes.is_empty()
    }
}

/// What a transaction (or some of its levels) changed. It crosses the
/// wire to remote clients' feeds as it is (see `docs/PROTOCOL.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Changes {
    tables: Vec<TableChange>,
    /// Something changed that no footprint describes: anything may have.
    everything: bool,
    /// The schema changed.
    schema: bool,
}

impl Changes {
    /// A change nobody can describe: every watcher must look again.
    pub(crate) fn everything() -> Changes {
        Changes {
            everything: true,
            schema: true,
            ..Changes::default()
        }
    }

    /// Every kind of change to these tables (an explicit notification).
    pub(crate) fn of_tables<'a>(tables: impl IntoIterator<Item = &'a str>) -> Changes {
        let mut changes = Changes::default();
        for table in tables {
            let change = entry(&mut changes.tables, table);
            change.kinds =
                UpdateKind::Insert.bit() | UpdateKind::Update.bit() | UpdateKind::Delete.bit();
            change.updated = Columns::All;
            change.rows = Rows::Unknown;
        }
        // What nobody saw may have changed triggers or views too.
        changes.schema = true;
        changes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tables.is_empty() && !self.everything && !self.schema
    }

    /// Whether anything may have changed.
    pub(crate) fn is_everything(&self) -> bool {
        self.everything
    }

    /// Whether the schema changed.
    pub(crate) fn changes_schema(&self) -> bool {
        self.schema
    }

    /// The tables changed, lowercase.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|c| c.table.as_str())
    }

    /// Adds what a statement with footprint `footprint` wrote, with the
    /// rows the update hook `reported` (rowids count only where the
    /// footprint trusts them and the hook reported the table).
    pub(crate) fn add(&mut self, footprint: &Footprint, reported: &ReportedRows) {
        for change in &footprint.writes {
            let mut change = change.clone();
            let rows = reported
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(&change.table));
            if let (true, Some((_, Some(rows)))) = (footprint.rows_trusted, rows) {
                change.rows = Rows::Only(rows.clone());
            }
            entry(&mut self.tables, &change.table).merge(&change);
        }
        self.schema |= footprint.schema;
    }

    /// Adds `other`'s changes.
    pub(crate) fn merge(&mut self, other: Changes) {
        for change in &other.tables {
            entry(&mut self.tables, &change.table).merge(change);
        }
        self.everything |= other.everything;
        self.schema |= other.schema;
    }

    /// One update per table and kind, in the order tables were first
    /// changed.
    pub(crate) fn updates(&self) -> Vec<TableUpdate> {
        let mut out = Vec::new();
        for change in &self.tables {
            for kind in UpdateKind::ALL {
                if change.kinds & kind.bit() != 0 {
                    out.push(TableUpdate {
                        table: change.table.clone(),
                        kind,
                    });
                }
            }
        }
        out
    }
}

/// What a watched query read: the union of its statements' read
/// footprints. It crosses the wire with a remote watched query's rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReadSet {
    tables: Vec<(String, Columns)>,
    /// Some statement's reads were unknown: any change may matter.
    anything: bool,
}

impl ReadSet {
    /// Adds what a statement with footprint `footprint` read.
    pub(crate) fn add(&mut self, footprint: &Footprint) {
        self.merge(&ReadSet {
            tables: footprint.reads.clone(),
            anything: false,
        });
    }

    /// A read set any change affects (what a failed run read is unknown).
    pub(crate) fn anything() -> ReadSet {
        ReadSet {
            anything: true,
            ..ReadSet::default()
        }
    }

    /// Adds `other`'s reads.
    pub(crate) fn merge(&mut self, other: &ReadSet) {
        for (table, columns) in &other.tables {
            match self.tables.iter_mut().find(|(t, _)| t == table) {
                Some((_, known)) => known.merge(columns),
                None => self.tables.push((table.clone(), columns.clone())),
            }
        }
        self.anything |= other.anything;
    }

    /// The tables read, lowercase; `None` if any change may matter.
    pub(crate) fn tables(&self) -> Option<impl Iterator<Item = &str>> {
        (!self.anything).then(|| self.tables.iter().map(|(t, _)| t.as_str()))
    }

    /// Whether a query with this read set (reading only the rows `keys`
    /// of one table, if given) may see a different result after `changes`.
    pub(crate) fn affected_by(&self, changes: &Changes, keys: Option<&RowKeys>) -> bool {
        if changes.everything || (self.anything && !changes.is_empty()) {
            return true;
        }
        changes.tables.iter().any(|change| {
            let keys = keys
                .filter(|keys| keys.table == change.table)
                .map(|keys| keys.keys.as_slice());
            self.tables
                .iter()
                .any(|(table, columns)| *table == change.table && change.affects(columns, keys))
        })
    }
}

/// Shared by a database's change feed and every connection of that
/// database: whether anyone watches, and the schema generation.
#[derive(Debug, Default)]
pub(crate) struct Switch {
    /// Watchers and update listeners alive (changed under this lock, so
    /// `state` moves in the same order).
    watchers: std::sync::Mutex<usize>,
    /// `2 × starts + on`: how many times watching began (watchers went from
    /// 0 to 1), and whether anyone watches now — one load tells both.
    state: AtomicU64,
    /// Bumped after every committed schema change.
    schema: AtomicU64,
    /// Watchers that read only some rows by rowid: while there are any,
    /// the writer collects the rowids its statements change.
    row_watchers: AtomicU64,
}

/// Whether anyone watched, and since which start: compared before and after
/// a statement or transaction to notice watching that began meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watching(u64);

impl Switch {
    /// One more watcher.
    pub(crate) fn watch(&self) {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        *watchers += 1;
        if *watchers == 1 {
            // Footprints remembered while nobody watched may predate a
            // schema change nobody tracked: every connection forgets them.
            self.schema.fetch_add(1, Ordering::SeqCst);
            self.state.fetch_add(3, Ordering::SeqCst);
        }
    }

    /// One watcher fewer.
    pub(crate) fn unwatch(&self) {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        *watchers = watchers.saturating_sub(1);
        if *watchers == 0 && self.state.load(Ordering::SeqCst) & 1 == 1 {
            self.state.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether anyone watches, and since which start.
    #[inline]
    pub(crate) fn watching(&self) -> Watching {
        Watching(self.state.load(Ordering::SeqCst))
    }

    /// One more watcher of some rows by rowid.
    pub(crate) fn watch_rows(&self) {
        self.row_watchers.fetch_add(1, Ordering::SeqCst);
    }

    /// One watcher of rows by rowid fewer.
    pub(crate) fn unwatch_rows(&self) {
        self.row_watchers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether anyone watches some rows by rowid.
    pub(crate) fn rows_wanted(&self) -> bool {
        self.row_watchers.load(Ordering::SeqCst) > 0
    }

    /// A committed change altered the schema.
    pub(crate) fn schema_changed(&self) {
        self.schema.fetch_add(1, Ordering::SeqCst);
    }

    fn schema_generation(&self) -> u64 {
        self.schema.load(Ordering::SeqCst)
    }
}

impl Watching {
    /// Whether anyone watches.
    #[inline]
    pub(crate) fn is_on(self) -> bool {
        self.0 & 1 == 1
    }

    /// Whether watching began between `self` and `later`, so whatever ran
    /// in between went untracked.
    #[inline]
    pub(crate) fn began_by(self, later: Watching) -> bool {
        later.is_on() && later != self
    }
}

/// How many footprints a connection remembers before it starts over (SQL
/// texts with values written into them would otherwise grow it forever).
const FOOTPRINT_CAPACITY: usize = 1024;

/// A connection's change tracking: its footprints, the changes of its open
/// levels, and the committed changes not yet handed on.
#[derive(Debug, Default)]
pub(crate) struct Tracking {
    switch: Option<Arc<Switch>>,
    /// Whether this connection's writes are tracked (the writer's are; a
    /// reader's, which cannot write, are not).
    tracks_writes: bool,
    footprints: HashMap<Arc<str>, Arc<Footprint>>,
    /// The schema generation the footprints were found under.
    schema_generation: u64,
    /// The footprint used last: a loop running one statement skips the
    /// map.
    last: Option<(Arc<str>, Arc<Footprint>)>,
    /// The changes of each open level, outermost first.
    levels: Vec<Changes>,
    /// Whether anyone watched when the transaction began.
    began: Option<Watching>,
    /// Committed and not yet handed on.
    committed: Changes,
    /// The read sets of statements run while a watched query runs.
    recording: Option<ReadSet>,
}

impl Tracking {
    /// Tracks changes for `switch`'s watchers (writes only if `writes`).
    pub(crate) fn attach(&mut self, switch: Arc<Switch>, writes: bool) {
        self.switch = Some(switch);
        self.tracks_writes = writes;
    }

    /// Whether anyone watches this connection's writes right now, if
    /// they are tracked at all.
    pub(crate) fn watching(&self) -> Option<Watching> {
        let switch = self.switch.as_ref().filter(|_| self.tracks_writes)?;
        Some(switch.watching())
    }

    /// Whether a watched query is running and recording what it reads.
    pub(crate) fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// The remembered footprint of `sql`, if any.
    pub(crate) fn footprint(&mut self, sql: &str) -> Option<Arc<Footprint>> {
        if let Some(switch) = &self.switch {
            let generation = switch.schema_generation();
            if generation != self.schema_generation {
                self.forget_footprints();
                self.schema_generation = generation;
            }
        }
        if let Some((last_sql, footprint)) = &self.last
            && **last_sql == *sql
        {
            return Some(footprint.clone());
        }
        let (key, footprint) = self.footprints.get_key_value(sql)?;
        let found = (key.clone(), footprint.clone());
        self.last = Some(found.clone());
        Some(found.1)
    }

    /// Remembers `sql`'s footprint.
    pub(crate) fn remember(&mut self, sql: &str, footprint: Footprint) -> Arc<Footprint> {
        if self.footprints.len() >= FOOTPRINT_CAPACITY {
            self.forget_footprints();
        }
        let key: Arc<str> = sql.into();
        let footprint = Arc::new(footprint);
        self.footprints.insert(key.clone(), footprint.clone());
        self.last = Some((key, footprint.clone()));
        footprint
    }

    /// Forgets every footprint (after this connection changed the schema).
    pub(crate) fn forget_footprints(&mut self) {
        self.footprints.clear();
        self.last = None;
    }

    /// A statement with footprint `footprint` (`None`: unknown) changed
    /// something — the update hook `reported` these rows — inside the
    /// innermost open level or in autocommit.
    pub(crate) fn wrote(&mut self, footprint: Option<&Footprint>, reported: &ReportedRows) {
        let changes = self.levels.last_mut().unwrap_or(&mut self.committed);
        match footprint {
            Some(footprint) => changes.add(footprint, reported),
            None => changes.merge(Changes::everything()),
        }
        if footprint.is_none_or(Footprint::changes_schema) {
            self.forget_footprints();
        }
    }

    /// A level opened.
    pub(crate) fn opened_level(&mut self) {
        if self.levels.is_empty() {
            self.began = self.watching();
        }
        self.levels.push(Changes::default());
    }

    /// The level at `position` (and every level inside it) ended:
    /// committed, its changes go to its parent — or, for the outermost,
    /// are ready to hand on; rolled back, they are gone.
    pub(crate) fn closed_levels(&mut self, position: usize, committed: bool) {
        if position >= self.levels.len() {
            return;
        }
        let mut ended = Changes::default();
        for changes in self.levels.drain(position..) {
            ended.merge(changes);
        }
        if !committed {
            if self.levels.is_empty() {
                self.began = None;
            }
            return;
        }
        match self.levels.last_mut() {
            Some(parent) => parent.merge(ended),
            None => {
                let began = self.began.take();
                if let (Some(began), Some(now)) = (began, self.watching())
                    && began.began_by(now)
                {
                    ended.merge(Changes::everything());
                }
                self.committed.merge(ended);
            }
        }
    }

    /// The committed changes not handed on yet, if there are any.
    pub(crate) fn take_committed(&mut self) -> Option<Changes> {
        if self.committed.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.committed))
    }

    /// Starts recording what statements read.
    pub(crate) fn start_recording(&mut self) -> Option<ReadSet> {
        self.recording.replace(ReadSet::default())
    }

    /// Stops recording; gives what was read and restores an outer
    /// recording (`outer`, from [`Tracking::start_recording`]), which also
    /// gets it.
    pub(crate) fn stop_recording(&mut self, outer: Option<ReadSet>) -> ReadSet {
        let reads = std::mem::replace(&mut self.recording, outer).unwrap_or_default();
        if let Some(outer) = &mut self.recording {
            outer.merge(&reads);
        }
        reads
    }

    /// A statement with footprint `footprint` ran while recording.
    pub(crate) fn read(&mut self, footprint: Option<&Footprint>) {
        let Some(recording) = &mut self.recording else {
            return;
        };
        match footprint {
            Some(footprint) => recording.add(footprint),
            None => recording.anything = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footprint(reads: &[(&str, &[&str])], writes: &[(&str, UpdateKind, &[&str])]) -> Footprint {
        let mut fp = Footprint::default();
        for (table, columns) in reads {
            for column in *columns {
                fp.read(table, column);
            }
        }
        for (table, kind, columns) in writes {
            fp.write(table, *kind, None);
            for column in *columns {
                fp.write(table, *kind, Some(column));
            }
        }
        fp
    }

    fn read_set(fp: &Footprint) -> ReadSet {
        let mut set = ReadSet::default();
        set.add(fp);
        set
    }

    fn changes(fp: &Footprint) -> Changes {
        let mut changes = Changes::default();
        changes.add(fp, &Vec::new());
        changes
    }

    #[test]
    fn a_change_affects_only_readers_of_its_table_and_columns() {
        let reader = read_set(&footprint(&[("Todos", &["title", "done"])], &[]));
        let insert = changes(&footprint(&[], &[("todos", UpdateKind::Insert, &[])]));
        let other_table = changes(&footprint(&[], &[("categories", UpdateKind::Insert, &[])]));
        let other_column = changes(&footprint(&[], &[("todos", UpdateKind::Update, &["body"])]));
        let read_column = changes(&footprint(&[], &[("TODOS", UpdateKind::Update, &["Done"])]));
        assert!(reader.affected_by(&insert, None));
        assert!(!reader.affected_by(&other_table, None));
        assert!(!reader.affected_by(&other_column, None));
        assert!(reader.affected_by(&read_column, None));
        assert!(reader.affected_by(&Changes::everything(), None));
        let count = read_set(&footprint(&[("todos", &[""])], &[]));
        assert!(
            count.affected_by(&other_column, None),
            "a count(*) reads every column"
        );
    }

    #[test]
    fn a_possible_replace_makes_an_update_a_delete_too() {
        let reader = read_set(&footprint(&[("todos", &["title"])], &[]));
        let mut fp = footprint(&[], &[("todos", UpdateKind::Update, &["body"])]);
        assert!(!reader.affected_by(&changes(&fp), None));
        fp.updates_may_delete();
        assert!(reader.affected_by(&changes(&fp), None));
    }

    #[test]
    fn committed_savepoints_merge_and_rolled_back_ones_vanish() {
        let mut tracking = Tracking::default();
        let todos = footprint(&[], &[("todos", UpdateKind::Insert, &[])]);
        let categories = footprint(&[], &[("categories", UpdateKind::Delete, &[])]);
        tracking.opened_level();
        tracking.wrote(Some(&todos), &Vec::new());
        tracking.opened_level();
        tracking.wrote(Some(&categories), &Vec::new());
        tracking.closed_levels(1, false);
        tracking.opened_level();
        tracking.opened_level();
        tracking.wrote(Some(&categories), &Vec::new());
        tracking.closed_levels(1, true);
        assert_eq!(tracking.take_committed(), None, "nothing is committed yet");
        tracking.closed_levels(0, true);
        let committed = tracking.take_committed().unwrap();
        assert_eq!(
            committed.updates(),
            [
                TableUpdate {
                    table: "todos".into(),
                    kind: UpdateKind::Insert
                },
                TableUpdate {
                    table: "categories".into(),
                    kind: UpdateKind::Delete
                },
            ]
        );
        tracking.opened_level();
        tracking.wrote(Some(&todos), &Vec::new());
        tracking.closed_levels(0, false);
        assert_eq!(
            tracking.take_committed(),
            None,
            "a rollback hands on nothing"
        );
    }

    #[test]
    fn a_watcher_of_some_rows_sees_only_changes_of_those_rows() {
        let reader = read_set(&footprint(&[("todos", &["title"])], &[]));
        let keys = RowKeys {
            table: "todos".into(),
            column: "id".into(),
            keys: vec![5],
        };
        let mut update = footprint(&[], &[("todos", UpdateKind::Update, &["title"])]);
        let mut of_row = |rowid: i64, trusted: bool| {
            if trusted {
                update.trust_rows();
            }
            let mut changes = Changes::default();
            changes.add(&update, &vec![("todos".to_owned(), Some(vec![rowid]))]);
            changes
        };
        assert!(!reader.affected_by(&of_row(7, true), Some(&keys)));
        assert!(reader.affected_by(&of_row(5, true), Some(&keys)));
        assert!(
            reader.affected_by(&of_row(7, true), None),
            "a watcher of every row"
        );
        let mut untrusted = Changes::default();
        untrusted.add(
            &footprint(&[], &[("todos", UpdateKind::Update, &["title"])]),
            &vec![("todos".to_owned(), Some(vec![7]))],
        );
        assert!(
            reader.affected_by(&untrusted, Some(&keys)),
            "untrusted rowids"
        );
        let mut unreported = Changes::default();
        unreported.add(&update, &Vec::new());
        assert!(
            reader.affected_by(&unreported, Some(&keys)),
            "no rowids reported"
        );
    }

    #[test]
    fn a_transaction_that_began_before_anyone_watched_may_have_changed_anything() {
        let switch = Arc::new(Switch::default());
        let mut tracking = Tracking::default();
        tracking.attach(switch.clone(), true);
        tracking.opened_level();
        switch.watch();
        tracking.wrote(
            Some(&footprint(&[], &[("todos", UpdateKind::Insert, &[])])),
            &Vec::new(),
        );
        tracking.closed_levels(0, true);
        assert!(tracking.take_committed().unwrap().is_everything());
    }
}
