//! The benchmark's data model and seed data: the row types every implementation
//! maps into, the SQL every implementation runs at setup (schema and pragmas),
//! and the deterministic [`Dataset`] each workload starts from. Every
//! implementation gets byte-for-byte the same rows.

use crate::workload::Workload;

/// A row of `users`, as every implementation must materialise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `users.id`, the rowid.
    pub id: i64,
    /// `users.name`, never NULL.
    pub name: String,
    /// `users.hair_color`, nullable.
    pub hair_color: Option<String>,
}

/// A row of `posts` (the shape of diesel's benchmark suite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// `posts.id`, the rowid.
    pub id: i64,
    /// `posts.user_id`, the author (no foreign key constraint, as in diesel's suite).
    pub user_id: i64,
    /// `posts.title`, never NULL.
    pub title: String,
    /// `posts.body`, nullable.
    pub body: Option<String>,
}

/// A row of `comments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// `comments.id`, the rowid.
    pub id: i64,
    /// `comments.post_id`, the post commented on.
    pub post_id: i64,
    /// `comments.text`, never NULL.
    pub text: String,
}

/// A user to insert: `users` without its id, which SQLite assigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Value for `users.name`.
    pub name: String,
    /// Value for `users.hair_color`.
    pub hair_color: Option<String>,
}

/// Pragmas every implementation runs on every connection it opens, before
/// creating the schema. In memory mode SQLite answers `journal_mode=WAL` with
/// `memory`, which is expected.
pub const PRAGMAS: &[&str] = &["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"];

/// The schema, one statement per entry, created on a fresh database by
/// [`Implementation::setup`](crate::Implementation::setup). Same shape as
/// diesel's benchmark suite, without `AUTOINCREMENT` (plain rowid tables).
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, hair_color TEXT)",
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, title TEXT NOT NULL, body TEXT)",
    "CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, text TEXT NOT NULL)",
];

/// The query behind [`Implementation::environment`](crate::Implementation::environment):
/// one row of three columns — SQLite version (text), journal mode (text),
/// synchronous level (integer; 1 is NORMAL), named `sqlite_version`,
/// `journal_mode`, `synchronous` for libraries that map by name.
pub const ENV_QUERY: &str = "SELECT sqlite_version() AS sqlite_version, \
     (SELECT journal_mode FROM pragma_journal_mode) AS journal_mode, \
     (SELECT synchronous FROM pragma_synchronous) AS synchronous";

/// Users seeded for `associations` (diesel's suite uses 9 on SQLite).
pub const ASSOCIATION_USERS: usize = 9;
/// Posts per user and comments per post in `associations`.
pub const ASSOCIATION_FANOUT: usize = 10;
/// Users seeded for `point_select_100k`; selects cycle through all of them.
pub const POINT_SELECT_USERS: i64 = 10_000;
/// The update every tenth statement of `concurrent_mix_8` runs, with
/// `("renamed", id)`.
pub const UPDATE_USER_NAME: &str = "UPDATE users SET name = ?1 WHERE id = ?2";
/// Rows inserted by one `bulk_insert_100k` operation.
pub const BULK_ROWS: usize = 100_000;
/// The `hair_color` bound by `medium_query_*`; half the seeded users have it.
pub const MEDIUM_HAIR_COLOR: &str = "black";

/// The rows a workload starts from, plus the rows its operations insert.
///
/// `users`, `posts` and `comments` carry explicit ids (1, 2, 3, … in order) and
/// must be inserted as given, with those ids, by `setup`. `new_users` is what
/// the insert workloads pass to every operation; it is not seeded.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Seed rows of `users`.
    pub users: Vec<User>,
    /// Seed rows of `posts`.
    pub posts: Vec<Post>,
    /// Seed rows of `comments`.
    pub comments: Vec<Comment>,
    /// The rows each insert operation inserts (`insert_rows_*`, `bulk_insert_100k`).
    pub new_users: Vec<NewUser>,
}

fn seed_users(count: usize, hair: impl Fn(usize) -> Option<&'static str>) -> Vec<User> {
    (0..count)
        .map(|i| User {
            id: i as i64 + 1,
            name: format!("User {i}"),
            hair_color: hair(i).map(str::to_owned),
        })
        .collect()
}

fn black_or_brown(i: usize) -> Option<&'static str> {
    Some(if i.is_multiple_of(2) {
        "black"
    } else {
        "brown"
    })
}

fn new_users(count: usize) -> Vec<NewUser> {
    (0..count)
        .map(|i| NewUser {
            name: format!("User {i}"),
            hair_color: Some("hair_color".to_owned()),
        })
        .collect()
}

impl Dataset {
    /// The deterministic dataset of `workload` (diesel's suite's data where the
    /// workload comes from there).
    pub fn for_workload(workload: Workload) -> Dataset {
        use Workload::*;
        match workload {
            TrivialQuery1 | TrivialQuery100 | TrivialQuery10000 => Dataset {
                users: seed_users(workload.size(), |_| None),
                ..Dataset::default()
            },
            MediumQuery1 | MediumQuery100 | MediumQuery1000 => Dataset {
                users: seed_users(workload.size(), black_or_brown),
                ..Dataset::default()
            },
            InsertRows1 | InsertRows100 | BulkInsert100k => Dataset {
                new_users: new_users(workload.size()),
                ..Dataset::default()
            },
            Associations => {
                let users = seed_users(ASSOCIATION_USERS, black_or_brown);
                let posts: Vec<Post> = users
                    .iter()
                    .flat_map(|u| (0..ASSOCIATION_FANOUT).map(move |i| (u.id, i)))
                    .enumerate()
                    .map(|(n, (user_id, i))| Post {
                        id: n as i64 + 1,
                        user_id,
                        title: format!("Post {i} by user {user_id}"),
                        body: None,
                    })
                    .collect();
                let comments = posts
                    .iter()
                    .flat_map(|p| (0..ASSOCIATION_FANOUT).map(move |i| (p.id, i)))
                    .enumerate()
                    .map(|(n, (post_id, i))| Comment {
                        id: n as i64 + 1,
                        post_id,
                        text: format!("Comment {i} on post {post_id}"),
                    })
                    .collect();
                Dataset {
                    users,
                    posts,
                    comments,
                    new_users: Vec::new(),
                }
            }
            PointSelect100k | ConcurrentSelect8 | ConcurrentSelect64 | ConcurrentMix8 => Dataset {
                users: seed_users(POINT_SELECT_USERS as usize, black_or_brown),
                ..Dataset::default()
            },
        }
    }
}

/// Users with their posts, each post with its comments: the result of `associations`.
pub type Grouped<U, P, C> = Vec<(U, Vec<(P, Vec<C>)>)>;

/// Groups loaded rows the way `associations` returns them:
/// `Vec<(user, Vec<(post, Vec<comment>)>)>`, users and posts in load order.
///
/// Generic over the row types so each library keeps its own structs; the key
/// functions read `users.id`, `posts.id`, `posts.user_id` and
/// `comments.post_id`. Implementations without a grouping helper of their own
/// (diesel has `grouped_by`) use this one, so grouping costs the same for all.
pub fn group_associations<U, P, C>(
    users: Vec<U>,
    posts: Vec<P>,
    comments: Vec<C>,
    user_id: impl Fn(&U) -> i64,
    post_id: impl Fn(&P) -> i64,
    post_user_id: impl Fn(&P) -> i64,
    comment_post_id: impl Fn(&C) -> i64,
) -> Grouped<U, P, C> {
    use std::collections::HashMap;
    let post_index: HashMap<i64, usize> = posts
        .iter()
        .enumerate()
        .map(|(i, p)| (post_id(p), i))
        .collect();
    let mut comments_of: Vec<Vec<C>> = posts.iter().map(|_| Vec::new()).collect();
    for c in comments {
        if let Some(&i) = post_index.get(&comment_post_id(&c)) {
            comments_of[i].push(c);
        }
    }
    let user_index: HashMap<i64, usize> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (user_id(u), i))
        .collect();
    let mut posts_of: Vec<Vec<(P, Vec<C>)>> = users.iter().map(|_| Vec::new()).collect();
    for (p, cs) in posts.into_iter().zip(comments_of) {
        if let Some(&i) = user_index.get(&post_user_id(&p)) {
            posts_of[i].push((p, cs));
        }
    }
    users.into_iter().zip(posts_of).collect()
}

/// The checksum of a grouped `associations` result: users + posts + comments.
pub fn association_count<U, P, C>(grouped: &Grouped<U, P, C>) -> u64 {
    grouped
        .iter()
        .map(|(_, posts)| 1 + posts.iter().map(|(_, cs)| 1 + cs.len()).sum::<usize>())
        .sum::<usize>() as u64
}
