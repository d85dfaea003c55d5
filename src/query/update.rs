//! `UPDATE` statements: set a companion's given columns on the rows a filter
//! selects, or replace a whole row by its primary key.

use std::marker::PhantomData;

use super::expr::{IntoExpr, Node};
use super::writer::SqlWriter;
use super::{Dialect, Statement};
use crate::error::{Error, Result};
use crate::table::{Companion, Table};
use crate::types::SqlValue;

/// An `UPDATE` of table `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Update<T> {
    filter: Option<Node>,
    set: Vec<(&'static str, SqlValue)>,
    marker: PhantomData<fn() -> T>,
}

impl<T: Table> Default for Update<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Table> Update<T> {
    /// An update of every row (narrow it with [`Update::filter`]).
    pub fn new() -> Self {
        Update {
            filter: None,
            set: Vec::new(),
            marker: PhantomData,
        }
    }

    /// Updates only the rows where `condition` holds; filters are `AND`ed.
    pub fn filter(mut self, condition: impl IntoExpr<bool>) -> Self {
        let condition = condition.into_expr().node;
        Node::and_into(&mut self.filter, condition);
        self
    }

    /// Sets the columns `values` gives (absent ones keep their value).
    pub fn set(mut self, values: &T::Companion) -> Self {
        for (i, name) in T::COLUMNS.iter().enumerate() {
            if let Some(v) = values.value(i) {
                self.set.push((name, v.into_owned()));
            }
        }
        self
    }

    /// Replaces the row with `row`'s primary key by `row` (drift's `replace`).
    pub fn replace(row: &T) -> Result<Self> {
        if T::PRIMARY_KEY.is_empty() {
            return Err(Error::invalid_argument(format!(
                "table `{}` has no primary key to replace rows by",
                T::NAME
            )));
        }
        let mut update = Update::new();
        for (i, name) in T::COLUMNS.iter().enumerate() {
            if T::PRIMARY_KEY.contains(&i) {
                let key = Node::Column {
                    table: T::NAME,
                    name,
                };
                let value = Node::Value(row.value(i).into_owned());
                let condition = Node::Binary {
                    op: "=",
                    left: Box::new(key),
                    right: Box::new(value),
                };
                Node::and_into(&mut update.filter, condition);
            } else if !T::GENERATED.contains(&i) {
                update.set.push((name, row.value(i).into_owned()));
            }
        }
        Ok(update)
    }

    /// The statement, or an error when nothing is set.
    pub fn build(&self, dialect: Dialect) -> Result<Statement> {
        if self.set.is_empty() {
            return Err(Error::invalid_argument(format!(
                "update of `{}` sets no column",
                T::NAME
            )));
        }
        let mut w = SqlWriter::new(dialect);
        w.push("UPDATE ");
        w.ident(T::NAME);
        w.push(" SET ");
        w.list(&self.set, |w, (name, value)| {
            w.ident(name);
            w.push(" = ");
            w.arg(value.clone());
        });
        if let Some(filter) = &self.filter {
            w.push(" WHERE ");
            w.node(filter);
        }
        Ok(w.finish())
    }
}
