//! `SELECT` statements: rows of a table, joins of tables, and selections of
//! columns and aggregates with `GROUP BY`.

use std::marker::PhantomData;

use super::expr::{IntoExpr, Node, Ordering};
use super::writer::SqlWriter;
use super::{Dialect, Expr, Statement};
use crate::row::{FromRow, Scalars};
use crate::table::{Column, Table};
use crate::types::{ColumnType, FromSql};

/// How a table joins the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// `INNER JOIN`: only rows with a match.
    Inner,
    /// `LEFT JOIN`: every row on the left, `NULL`s where nothing matches.
    Left,
}

#[derive(Debug, Clone, PartialEq)]
struct Source {
    table: &'static str,
    /// The qualified select list of this table's columns.
    columns: &'static str,
    /// The column that is the table's rowid, if one is.
    rowid: Option<&'static str>,
}

/// A table joined to the ones before it.
#[derive(Debug, Clone, PartialEq)]
struct Joined {
    source: Source,
    kind: Join,
    on: Node,
}

/// The parts every `SELECT` has, whatever it returns.
#[derive(Debug, Clone, PartialEq)]
struct Clauses {
    from: Source,
    /// `SELECT <every column> FROM <table>`, cached per table: the whole
    /// statement while nothing else is added.
    select_all: &'static str,
    joins: Vec<Joined>,
    filter: Option<Node>,
    group_by: Vec<Node>,
    having: Option<Node>,
    order_by: Vec<Ordering>,
    limit: Option<u64>,
    offset: Option<u64>,
    distinct: bool,
}

impl Clauses {
    /// The table, its rowid column and the rowids the rows read must have,
    /// when the filter
    /// says so (`id = 1`, `id IN (1, 2)`, combined with `AND`/`OR`) and
    /// nothing is joined.
    fn rowid_keys(&self) -> Option<(&'static str, &'static str, Vec<i64>)> {
        let rowid = self.from.rowid.filter(|_| self.joins.is_empty())?;
        // Custom SQL anywhere may read other rows (a subquery).
        let custom = self
            .filter
            .iter()
            .chain(&self.having)
            .chain(&self.group_by)
            .any(Node::has_custom)
            || self.order_by.iter().any(|o| o.node.has_custom());
        if custom {
            return None;
        }
        let keys = self.filter.as_ref()?.rowid_keys(self.from.table, rowid)?;
        Some((self.from.table, rowid, keys))
    }

    fn write_from(&self, w: &mut SqlWriter) {
        w.push(" FROM ");
        w.ident(self.from.table);
        for joined in &self.joins {
            w.push(match joined.kind {
                Join::Inner => " INNER JOIN ",
                Join::Left => " LEFT JOIN ",
            });
            w.ident(joined.source.table);
            w.push(" ON ");
            w.node(&joined.on);
        }
    }

    /// Whether nothing but the table was given, so the cached text applies.
    fn is_plain(&self) -> bool {
        self.joins.is_empty()
            && self.filter.is_none()
            && self.group_by.is_empty()
            && self.having.is_none()
            && self.order_by.is_empty()
            && self.limit.is_none()
            && self.offset.is_none()
            && !self.distinct
    }

    fn write_tail(&self, w: &mut SqlWriter) {
        if let Some(filter) = &self.filter {
            w.push(" WHERE ");
            w.node(filter);
        }
        if !self.group_by.is_empty() {
            w.push(" GROUP BY ");
            w.list(&self.group_by, SqlWriter::node);
        }
        if let Some(having) = &self.having {
            w.push(" HAVING ");
            w.node(having);
        }
        if !self.order_by.is_empty() {
            w.push(" ORDER BY ");
            w.list(&self.order_by, |w, ordering| {
                w.node(&ordering.node);
                if ordering.descending {
                    w.push(" DESC");
                }
            });
        }
        match (self.limit, self.offset) {
            (Some(limit), offset) => {
                w.push(&format!(" LIMIT {limit}"));
                if let Some(offset) = offset {
                    w.push(&format!(" OFFSET {offset}"));
                }
            }
            (None, Some(offset)) => w.push(&format!(" LIMIT -1 OFFSET {offset}")),
            (None, None) => {}
        }
    }

    fn and_filter(&mut self, condition: Node) {
        Node::and_into(&mut self.filter, condition);
    }

    fn select_head(&self, w: &mut SqlWriter) {
        w.push(if self.distinct {
            "SELECT DISTINCT "
        } else {
            "SELECT "
        });
    }
}

/// The builder methods every `SELECT` shape shares (over its `clauses`).
macro_rules! clause_builders {
    () => {
        /// Keeps the rows where `condition` holds; several filters are `AND`ed.
        pub fn filter(mut self, condition: impl IntoExpr<bool>) -> Self {
            self.clauses.and_filter(condition.into_expr().node);
            self
        }

        /// Adds a sort key (`Todo::TITLE.asc()`); keys apply in the order added.
        pub fn order_by(mut self, ordering: Ordering) -> Self {
            self.clauses.order_by.push(ordering);
            self
        }

        /// At most `limit` rows.
        pub fn limit(mut self, limit: u64) -> Self {
            self.clauses.limit = Some(limit);
            self
        }

        /// Skips the first `offset` rows.
        pub fn offset(mut self, offset: u64) -> Self {
            self.clauses.offset = Some(offset);
            self
        }
    };
}

/// A `SELECT` returning rows of type `R`: a table's rows, or tuples of them
/// after joins (`(Todo, Option<Category>)` after a left join).
#[derive(Debug, Clone, PartialEq)]
pub struct Select<R> {
    clauses: Clauses,
    marker: PhantomData<fn() -> R>,
}

impl<T: Table> Select<T> {
    /// Every row of `T`.
    pub fn from_table() -> Self {
        let cache = T::statement_cache();
        Select {
            clauses: Clauses {
                from: Source {
                    table: T::NAME,
                    columns: cache.columns::<T>(),
                    rowid: T::ROWID_ALIAS.map(|i| T::COLUMNS[i]),
                },
                select_all: cache.select_all::<T>(),
                joins: Vec::new(),
                filter: None,
                group_by: Vec::new(),
                having: None,
                order_by: Vec::new(),
                limit: None,
                offset: None,
                distinct: false,
            },
            marker: PhantomData,
        }
    }
}

impl<R: FromRow> Select<R> {
    clause_builders!();

    /// `SELECT DISTINCT`.
    pub fn distinct(mut self) -> Self {
        self.clauses.distinct = true;
        self
    }

    /// Joins table `J` with `INNER JOIN … ON on`: rows become `(R, J)`.
    pub fn inner_join<J: Table>(self, on: impl IntoExpr<bool>) -> Select<(R, J)> {
        self.join::<J, _>(Join::Inner, on.into_expr().node)
    }

    /// Joins table `J` with `LEFT JOIN … ON on`: rows become `(R, Option<J>)`.
    pub fn left_join<J: Table>(self, on: impl IntoExpr<bool>) -> Select<(R, Option<J>)> {
        self.join::<J, _>(Join::Left, on.into_expr().node)
    }

    fn join<J: Table, Out>(mut self, kind: Join, on: Node) -> Select<Out> {
        let source = Source {
            table: J::NAME,
            columns: J::statement_cache().columns::<J>(),
            rowid: J::ROWID_ALIAS.map(|i| J::COLUMNS[i]),
        };
        self.clauses.joins.push(Joined { source, kind, on });
        Select {
            clauses: self.clauses,
            marker: PhantomData,
        }
    }

    /// Selects these columns or expressions instead of whole rows (keeping
    /// joins and filters): `.columns((Todo::CATEGORY, Todo::ID.count()))`.
    pub fn columns<C: Selectable>(self, columns: C) -> SelectColumns<C::Output> {
        SelectColumns {
            clauses: self.clauses,
            columns: columns.nodes(),
            marker: PhantomData,
        }
    }

    /// See `Clauses::rowid_keys`.
    pub(crate) fn rowid_keys(&self) -> Option<(&'static str, &'static str, Vec<i64>)> {
        self.clauses.rowid_keys()
    }

    /// `SELECT COUNT(*)` over the rows this select would return.
    pub fn count(self) -> SelectColumns<(i64,)> {
        self.columns((super::expr::count_all(),))
    }

    /// The statement.
    pub fn build(&self, dialect: Dialect) -> Statement {
        if self.clauses.is_plain() {
            return Statement::new(self.clauses.select_all, Vec::new()).reading();
        }
        let mut w = SqlWriter::new(dialect);
        self.clauses.select_head(&mut w);
        w.push(self.clauses.from.columns);
        for joined in &self.clauses.joins {
            w.push(", ");
            w.push(joined.source.columns);
        }
        self.clauses.write_from(&mut w);
        self.clauses.write_tail(&mut w);
        w.finish().reading()
    }
}

/// A `SELECT` of columns and aggregates, returning tuples of values.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectColumns<O> {
    clauses: Clauses,
    columns: Vec<Node>,
    marker: PhantomData<fn() -> O>,
}

impl<O> SelectColumns<O>
where
    Scalars<O>: FromRow,
{
    clause_builders!();

    /// See `Clauses::rowid_keys`; custom SQL among the columns may read
    /// other rows too.
    pub(crate) fn rowid_keys(&self) -> Option<(&'static str, &'static str, Vec<i64>)> {
        if self.columns.iter().any(Node::has_custom) {
            return None;
        }
        self.clauses.rowid_keys()
    }

    /// `GROUP BY` these expressions (call again to add more).
    pub fn group_by<V>(mut self, key: impl IntoExpr<V>) -> Self {
        self.clauses.group_by.push(key.into_expr().node);
        self
    }

    /// `HAVING condition` on groups.
    pub fn having(mut self, condition: impl IntoExpr<bool>) -> Self {
        self.clauses.having = Some(condition.into_expr().node);
        self
    }

    /// The statement.
    pub fn build(&self, dialect: Dialect) -> Statement {
        let mut w = SqlWriter::new(dialect);
        self.clauses.select_head(&mut w);
        w.list(&self.columns, SqlWriter::node);
        self.clauses.write_from(&mut w);
        self.clauses.write_tail(&mut w);
        w.finish().reading()
    }
}

/// One selectable column or expression, whose value reads as `Output`.
pub trait SelectableItem {
    /// The Rust type of the value.
    type Output: FromSql;
    /// The expression tree.
    #[doc(hidden)]
    fn node(self) -> Node;
}

impl<V: FromSql> SelectableItem for Expr<V> {
    type Output = V;
    fn node(self) -> Node {
        self.node
    }
}

impl<T: Table, V: ColumnType> SelectableItem for Column<T, V> {
    type Output = V;
    fn node(self) -> Node {
        Node::Column {
            table: T::NAME,
            name: self.name(),
        }
    }
}

/// A tuple of selectable items (columns or expressions), up to six.
pub trait Selectable {
    /// The tuple of the items' Rust types.
    type Output;
    /// The expression trees.
    #[doc(hidden)]
    fn nodes(self) -> Vec<Node>;
}

macro_rules! selectable_tuples {
    ($(($($name:ident $idx:tt),+)),+) => {$(
        impl<$($name: SelectableItem),+> Selectable for ($($name,)+) {
            type Output = ($($name::Output,)+);
            fn nodes(self) -> Vec<Node> {
                vec![$(self.$idx.node()),+]
            }
        }
    )+};
}

selectable_tuples!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5)
);
