//! The workloads: their stable names, how many operations each round runs,
//! which [`Op`] operation number `i` is, and the checksum it must return.
//! `bench/README.md` describes the same thing for humans; keep them in step.

use crate::data::{
    ASSOCIATION_FANOUT, ASSOCIATION_USERS, BULK_ROWS, Dataset, MEDIUM_HAIR_COLOR, NewUser,
    POINT_SELECT_USERS,
};

/// One benchmark workload. [`Workload::name`] is the stable name used on the
/// command line, in the peer protocol and in `results.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// `trivial_query_1`: load all of `users` (1 row) into `Vec<User>`.
    TrivialQuery1,
    /// `trivial_query_100`: load all of `users` (100 rows).
    TrivialQuery100,
    /// `trivial_query_10000`: load all of `users` (10,000 rows).
    TrivialQuery10000,
    /// `medium_query_1`: `users LEFT JOIN posts … WHERE hair_color = ?`, 1 user.
    MediumQuery1,
    /// `medium_query_100`: the same join over 100 users (50 match).
    MediumQuery100,
    /// `medium_query_1000`: the same join over 1,000 users (500 match).
    MediumQuery1000,
    /// `insert_rows_1`: insert 1 user per operation.
    InsertRows1,
    /// `insert_rows_100`: insert 100 users per operation, one statement or transaction.
    InsertRows100,
    /// `associations`: users, their posts, the posts' comments; 3 queries, grouped.
    Associations,
    /// `bulk_insert_100k`: 100,000 users in one transaction per operation.
    BulkInsert100k,
    /// `point_select_100k`: 100,000 selects by primary key, one per operation.
    PointSelect100k,
    /// `concurrent_select_8`: 8 tasks at once, each 1,000 selects by primary
    /// key; one operation is the whole burst.
    ConcurrentSelect8,
    /// `concurrent_select_64`: 64 tasks at once, each 125 selects.
    ConcurrentSelect64,
    /// `concurrent_mix_8`: 8 tasks at once, each 1,000 statements of which
    /// every tenth updates a row by primary key and the rest select one.
    ConcurrentMix8,
}

/// How many operations one round of a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Untimed operations run first (same work, results checked, not recorded).
    pub warmup: u64,
    /// Timed operations.
    pub iterations: u64,
}

/// The work of one operation, handed to [`Implementation::run`](crate::Implementation::run).
///
/// Each variant says what to do and what to return: the returned `u64` is a
/// checksum the harness compares with the expected value, so every
/// implementation provably does the same work.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// Load every row of `users` (`SELECT id, name, hair_color FROM users`)
    /// into a `Vec` of user structs. Return the number of users loaded.
    LoadUsers,
    /// Load `users LEFT JOIN posts ON posts.user_id = users.id WHERE
    /// users.hair_color = ?` (bound to `hair_color`) into a `Vec<(User,
    /// Option<Post>)>`. Return the number of pairs loaded.
    UsersWithPosts {
        /// The value bound to the `?`.
        hair_color: &'a str,
    },
    /// Insert these users the way a user of the library naturally inserts a
    /// handful of rows: one multi-row statement, or one transaction (a single
    /// row may be a single autocommit statement). Return the rows inserted.
    InsertUsers(&'a [NewUser]),
    /// Load all users; then their posts (`WHERE user_id IN (…)` with the loaded
    /// ids); then those posts' comments (`WHERE post_id IN (…)`); then group in
    /// memory into `Vec<(User, Vec<(Post, Vec<Comment>)>)>`. Three queries.
    /// Return users + posts + comments loaded.
    LoadAssociations,
    /// Insert all these users (100,000) in one transaction, the way a user of
    /// the library naturally writes a bulk insert. Return the rows inserted.
    BulkInsertUsers(&'a [NewUser]),
    /// `SELECT id, name, hair_color FROM users WHERE id = ?` into one user
    /// struct. Return the loaded user's `id`.
    SelectUserById(i64),
    /// Run the burst's tasks at once (on the library's async runtime; a
    /// synchronous baseline runs them one after another), each its
    /// statements in order, and wait for all. Return the sum of the tasks'
    /// [`Burst::task_checksum`]s.
    Concurrent(Burst),
}

impl Workload {
    /// Every workload, in the order the runner runs and prints them.
    pub const ALL: [Workload; 14] = [
        Workload::TrivialQuery1,
        Workload::TrivialQuery100,
        Workload::TrivialQuery10000,
        Workload::MediumQuery1,
        Workload::MediumQuery100,
        Workload::MediumQuery1000,
        Workload::InsertRows1,
        Workload::InsertRows100,
        Workload::Associations,
        Workload::BulkInsert100k,
        Workload::PointSelect100k,
        Workload::ConcurrentSelect8,
        Workload::ConcurrentSelect64,
        Workload::ConcurrentMix8,
    ];

    /// The stable name (`trivial_query_1`, …).
    pub fn name(self) -> &'static str {
        use Workload::*;
        match self {
            TrivialQuery1 => "trivial_query_1",
            TrivialQuery100 => "trivial_query_100",
            TrivialQuery10000 => "trivial_query_10000",
            MediumQuery1 => "medium_query_1",
            MediumQuery100 => "medium_query_100",
            MediumQuery1000 => "medium_query_1000",
            InsertRows1 => "insert_rows_1",
            InsertRows100 => "insert_rows_100",
            Associations => "associations",
            BulkInsert100k => "bulk_insert_100k",
            PointSelect100k => "point_select_100k",
            ConcurrentSelect8 => "concurrent_select_8",
            ConcurrentSelect64 => "concurrent_select_64",
            ConcurrentMix8 => "concurrent_mix_8",
        }
    }

    /// How many tasks run at once and how many statements each runs, for
    /// the concurrent workloads.
    pub fn concurrency(self) -> Option<(usize, usize)> {
        match self {
            Workload::ConcurrentSelect8 | Workload::ConcurrentMix8 => Some((8, 1_000)),
            Workload::ConcurrentSelect64 => Some((64, 125)),
            _ => None,
        }
    }

    /// The workload with this stable name.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The size in the workload's name: rows seeded (queries), rows inserted
    /// per operation (inserts), selects per round (point selects).
    pub fn size(self) -> usize {
        use Workload::*;
        match self {
            TrivialQuery1 | MediumQuery1 | InsertRows1 => 1,
            TrivialQuery100 | MediumQuery100 | InsertRows100 => 100,
            MediumQuery1000 => 1_000,
            TrivialQuery10000 => 10_000,
            Associations => ASSOCIATION_USERS,
            BulkInsert100k => BULK_ROWS,
            PointSelect100k => 100_000,
            ConcurrentSelect8 | ConcurrentSelect64 | ConcurrentMix8 => 8_000,
        }
    }

    /// Operations per round: `quick` for `--quick`, otherwise the full run.
    pub fn plan(self, quick: bool) -> Plan {
        use Workload::*;
        let (warmup, iterations) = match (self, quick) {
            (TrivialQuery1 | MediumQuery1, true) => (200, 2_000),
            (TrivialQuery1 | MediumQuery1, false) => (1_000, 20_000),
            (TrivialQuery100 | MediumQuery100, true) => (100, 1_000),
            (TrivialQuery100 | MediumQuery100, false) => (500, 10_000),
            (TrivialQuery10000, true) => (3, 30),
            (TrivialQuery10000, false) => (10, 300),
            (MediumQuery1000, true) => (10, 100),
            (MediumQuery1000, false) => (50, 1_000),
            (InsertRows1, true) => (100, 1_000),
            (InsertRows1, false) => (500, 10_000),
            (InsertRows100, true) => (10, 100),
            (InsertRows100, false) => (50, 1_000),
            (Associations, true) => (20, 200),
            (Associations, false) => (100, 2_000),
            (BulkInsert100k, true) => (1, 1),
            (BulkInsert100k, false) => (1, 3),
            (PointSelect100k, true) => (1_000, 100_000),
            (PointSelect100k, false) => (10_000, 100_000),
            (ConcurrentSelect8 | ConcurrentSelect64 | ConcurrentMix8, true) => (2, 20),
            (ConcurrentSelect8 | ConcurrentSelect64 | ConcurrentMix8, false) => (5, 100),
        };
        Plan { warmup, iterations }
    }

    /// Rows (or statements) one operation stands for in `ops_per_sec`:
    /// 100,000 for `bulk_insert_100k` (reported as rows/s), every statement
    /// of the burst for the concurrent workloads (statements/s), 1 otherwise.
    pub fn rows_per_op(self) -> u64 {
        match self {
            Workload::BulkInsert100k => BULK_ROWS as u64,
            w => w
                .concurrency()
                .map_or(1, |(tasks, each)| (tasks * each) as u64),
        }
    }

    /// The unit of `ops_per_sec` for this workload (`ops`, `rows`, `stmts`).
    pub fn unit(self) -> &'static str {
        match self {
            Workload::BulkInsert100k => "rows",
            w if w.concurrency().is_some() => "stmts",
            _ => "ops",
        }
    }

    /// SQL run (untimed) before every operation, if the workload needs a clean
    /// slate: `bulk_insert_100k` empties `users` so each transaction inserts
    /// into an empty table.
    pub fn reset_sql(self) -> Option<&'static str> {
        match self {
            Workload::BulkInsert100k => Some("DELETE FROM users"),
            _ => None,
        }
    }

    /// The primary key selected by operation `i` of `point_select_100k`: a
    /// fixed permutation walk over all seeded ids (7919 is prime, so it visits
    /// every id of 1..=10,000 before repeating).
    pub fn point_id(i: u64) -> i64 {
        1 + ((i as i64).wrapping_mul(7_919)).rem_euclid(POINT_SELECT_USERS)
    }

    /// Operation number `i` (counting warm-up operations first) over `dataset`.
    pub fn op(self, dataset: &Dataset, i: u64) -> Op<'_> {
        use Workload::*;
        match self {
            TrivialQuery1 | TrivialQuery100 | TrivialQuery10000 => Op::LoadUsers,
            MediumQuery1 | MediumQuery100 | MediumQuery1000 => Op::UsersWithPosts {
                hair_color: MEDIUM_HAIR_COLOR,
            },
            InsertRows1 | InsertRows100 => Op::InsertUsers(&dataset.new_users),
            Associations => Op::LoadAssociations,
            BulkInsert100k => Op::BulkInsertUsers(&dataset.new_users),
            PointSelect100k => Op::SelectUserById(Workload::point_id(i)),
            ConcurrentSelect8 | ConcurrentSelect64 | ConcurrentMix8 => {
                let (tasks, per_task) = self.concurrency().unwrap_or((1, 1));
                Op::Concurrent(Burst {
                    tasks,
                    per_task,
                    first: i * (tasks * per_task) as u64,
                    writes: self == ConcurrentMix8,
                })
            }
        }
    }

    /// The checksum operation number `i` must return.
    pub fn expected(self, i: u64) -> u64 {
        use Workload::*;
        match self {
            TrivialQuery1 | TrivialQuery100 | TrivialQuery10000 => self.size() as u64,
            // Every other seeded user is black-haired; no posts are seeded
            // (diesel's suite), so each match pairs with `None`.
            MediumQuery1 | MediumQuery100 | MediumQuery1000 => self.size().div_ceil(2) as u64,
            InsertRows1 | InsertRows100 | BulkInsert100k => self.size() as u64,
            Associations => {
                let users = ASSOCIATION_USERS;
                let posts = users * ASSOCIATION_FANOUT;
                (users + posts + posts * ASSOCIATION_FANOUT) as u64
            }
            PointSelect100k => Workload::point_id(i) as u64,
            ConcurrentSelect8 | ConcurrentSelect64 | ConcurrentMix8 => {
                match self.op(&Dataset::default(), i) {
                    Op::Concurrent(burst) => (0..burst.tasks).map(|t| burst.task_checksum(t)).sum(),
                    _ => 0,
                }
            }
        }
    }
}

/// The statements of a concurrent operation: `tasks` tasks started at once,
/// each running `per_task` statements one after another (each awaited
/// before the next), on `tasks` clones of the one database handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// How many tasks run at once.
    pub tasks: usize,
    /// Statements per task.
    pub per_task: usize,
    /// Numbers the burst's statements (so every operation selects other ids).
    pub first: u64,
    /// Whether every tenth statement is an update.
    pub writes: bool,
}

/// One statement of a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `SELECT id, name, hair_color FROM users WHERE id = ?` into a user
    /// struct; counts the user's id.
    Select(i64),
    /// [`UPDATE_USER_NAME`](crate::data::UPDATE_USER_NAME) with
    /// `("renamed", id)`; counts the rows changed (1).
    Update(i64),
}

impl Burst {
    /// Statement `j` of task `t`.
    pub fn step(&self, task: usize, j: usize) -> Step {
        let n = self.first + (task * self.per_task + j) as u64;
        let id = Workload::point_id(n);
        if self.writes && j % 10 == 9 {
            Step::Update(id)
        } else {
            Step::Select(id)
        }
    }

    /// What task `t` must return: its selected ids plus its rows updated.
    pub fn task_checksum(&self, task: usize) -> u64 {
        (0..self.per_task)
            .map(|j| match self.step(task, j) {
                Step::Select(id) => id as u64,
                Step::Update(_) => 1,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::from_name(w.name()), Some(w));
        }
    }

    #[test]
    fn point_ids_cover_every_user() {
        let mut seen = vec![false; POINT_SELECT_USERS as usize];
        for i in 0..POINT_SELECT_USERS as u64 {
            seen[(Workload::point_id(i) - 1) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn datasets_match_expectations() {
        let d = Dataset::for_workload(Workload::Associations);
        assert_eq!(
            (d.users.len() + d.posts.len() + d.comments.len()) as u64,
            Workload::Associations.expected(0)
        );
        let d = Dataset::for_workload(Workload::MediumQuery100);
        let black = d
            .users
            .iter()
            .filter(|u| u.hair_color.as_deref() == Some(MEDIUM_HAIR_COLOR))
            .count();
        assert_eq!(black as u64, Workload::MediumQuery100.expected(0));
    }
}
