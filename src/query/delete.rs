//! `DELETE` statements.

use std::marker::PhantomData;

use super::expr::{IntoExpr, Node};
use super::writer::SqlWriter;
use super::{Dialect, Statement};
use crate::table::Table;

/// A `DELETE` from table `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delete<T> {
    filter: Option<Node>,
    marker: PhantomData<fn() -> T>,
}

impl<T: Table> Default for Delete<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Table> Delete<T> {
    /// A delete of every row (narrow it with [`Delete::filter`]).
    pub fn new() -> Self {
        Delete {
            filter: None,
            marker: PhantomData,
        }
    }

    /// Deletes only the rows where `condition` holds; filters are `AND`ed.
    pub fn filter(mut self, condition: impl IntoExpr<bool>) -> Self {
        let condition = condition.into_expr().node;
        Node::and_into(&mut self.filter, condition);
        self
    }

    /// The statement.
    pub fn build(&self, dialect: Dialect) -> Statement {
        let mut w = SqlWriter::new(dialect);
        w.push("DELETE FROM ");
        w.ident(T::NAME);
        if let Some(filter) = &self.filter {
            w.push(" WHERE ");
            w.node(filter);
        }
        w.finish()
    }
}
