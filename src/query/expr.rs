//! Typed SQL expressions: [`Expr<V>`] is an expression whose value has the
//! Rust type `V`; columns, values and other expressions combine into new
//! ones (`Todo::TITLE.eq("x").and(Todo::CATEGORY.is_null())`).
//!
//! The type parameter only guides the Rust compiler (comparing a text column
//! with an integer does not compile); the SQL is the same either way.

use std::marker::PhantomData;
use std::ops;

use super::writer::SqlWriter;
use crate::table::{Column, Table};
use crate::types::{ColumnType, SqlType, SqlValue, ToSql};

/// The untyped expression tree behind [`Expr`] (not nameable outside the
/// crate: the module is private).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Node {
    Column {
        table: &'static str,
        name: &'static str,
    },
    Value(SqlValue),
    Binary {
        op: &'static str,
        left: Box<Node>,
        right: Box<Node>,
    },
    Prefix {
        op: &'static str,
        operand: Box<Node>,
    },
    Postfix {
        operand: Box<Node>,
        op: &'static str,
    },
    InList {
        operand: Box<Node>,
        list: Vec<Node>,
        negated: bool,
    },
    Cast {
        operand: Box<Node>,
        to: SqlType,
    },
    Function {
        name: &'static str,
        args: Vec<Node>,
        distinct: bool,
    },
    CountAll,
    Custom {
        sql: String,
        args: Vec<SqlValue>,
    },
}

impl Node {
    /// Adds `condition` to `filter` with `AND` (or makes it the filter).
    pub(crate) fn and_into(filter: &mut Option<Node>, condition: Node) {
        *filter = Some(match filter.take() {
            None => condition,
            Some(existing) => Node::Binary {
                op: "AND",
                left: Box::new(existing),
                right: Box::new(condition),
            },
        });
    }

    /// Whether raw SQL (`custom(..)`) appears anywhere in the expression.
    pub(crate) fn has_custom(&self) -> bool {
        match self {
            Node::Custom { .. } => true,
            Node::Column { .. } | Node::Value(_) | Node::CountAll => false,
            Node::Binary { left, right, .. } => left.has_custom() || right.has_custom(),
            Node::Prefix { operand, .. }
            | Node::Postfix { operand, .. }
            | Node::Cast { operand, .. } => operand.has_custom(),
            Node::InList { operand, list, .. } => {
                operand.has_custom() || list.iter().any(Node::has_custom)
            }
            Node::Function { args, .. } => args.iter().any(Node::has_custom),
        }
    }

    /// The rowids a row of `table` must have for this condition to hold,
    /// when it says (`rowid = 1`, `rowid IN (1, 2)`, and `AND`/`OR` of
    /// those); `None` when any row may match.
    pub(crate) fn rowid_keys(&self, table: &str, rowid: &str) -> Option<Vec<i64>> {
        let is_rowid = |node: &Node| matches!(node, Node::Column { table: t, name } if *t == table && *name == rowid);
        let key = |node: &Node| match node {
            Node::Value(SqlValue::Integer(key)) => Some(*key),
            _ => None,
        };
        match self {
            Node::Binary {
                op: "=",
                left,
                right,
            } if is_rowid(left) => key(right).map(|k| vec![k]),
            Node::Binary {
                op: "=",
                left,
                right,
            } if is_rowid(right) => key(left).map(|k| vec![k]),
            Node::InList {
                operand,
                list,
                negated: false,
            } if is_rowid(operand) => list.iter().map(key).collect(),
            Node::Binary {
                op: "AND",
                left,
                right,
            } => {
                match (
                    left.rowid_keys(table, rowid),
                    right.rowid_keys(table, rowid),
                ) {
                    (Some(a), Some(b)) => Some(a.into_iter().filter(|k| b.contains(k)).collect()),
                    (one, other) => one.or(other),
                }
            }
            Node::Binary {
                op: "OR",
                left,
                right,
            } => {
                let mut keys = left.rowid_keys(table, rowid)?;
                keys.extend(right.rowid_keys(table, rowid)?);
                Some(keys)
            }
            _ => None,
        }
    }

    pub(crate) fn write(&self, w: &mut SqlWriter) {
        match self {
            Node::Column { table, name } => w.qualified(table, name),
            Node::Value(v) => w.arg(v.clone()),
            Node::Binary { op, left, right } => {
                left.write_operand(w);
                w.push(" ");
                w.push(op);
                w.push(" ");
                right.write_operand(w);
            }
            Node::Prefix { op, operand } => {
                w.push(op);
                operand.write_operand(w);
            }
            Node::Postfix { operand, op } => {
                operand.write_operand(w);
                w.push(op);
            }
            Node::InList {
                operand,
                list,
                negated,
            } => {
                operand.write_operand(w);
                w.push(if *negated { " NOT IN (" } else { " IN (" });
                w.list(list, |w, item| item.write(w));
                w.push(")");
            }
            Node::Cast { operand, to } => {
                w.push("CAST(");
                operand.write(w);
                w.push(" AS ");
                w.push(to.sql_name());
                w.push(")");
            }
            Node::Function {
                name,
                args,
                distinct,
            } => {
                w.push(name);
                w.push("(");
                if *distinct {
                    w.push("DISTINCT ");
                }
                w.list(args, |w, arg| arg.write(w));
                w.push(")");
            }
            Node::CountAll => w.push("COUNT(*)"),
            Node::Custom { sql, args } => {
                w.push(sql);
                w.extend_args(args.iter().cloned());
            }
        }
    }

    /// Writes the node as an operand, parenthesized when it is compound.
    fn write_operand(&self, w: &mut SqlWriter) {
        let compound = matches!(
            self,
            Node::Binary { .. }
                | Node::Prefix { .. }
                | Node::Postfix { .. }
                | Node::InList { .. }
                | Node::Custom { .. }
        );
        if compound {
            w.push("(");
            self.write(w);
            w.push(")");
        } else {
            self.write(w);
        }
    }
}

/// A typed SQL expression whose value reads as `V`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr<V> {
    pub(crate) node: Node,
    marker: PhantomData<fn() -> V>,
}

impl<V> Expr<V> {
    pub(crate) fn from_node(node: Node) -> Self {
        Expr {
            node,
            marker: PhantomData,
        }
    }

    /// A bound value as an expression.
    pub fn value(value: impl ToSql) -> Self {
        Expr::from_node(Node::Value(value.to_sql().into_owned()))
    }
}

/// An SQL expression written by hand with a declared result type (drift's
/// `CustomExpression`). `?` placeholders in `sql` take `args` in order.
///
/// ```
/// use driftwood::query::{custom, Expr};
/// let upper: Expr<String> = custom("upper(\"title\")", []);
/// ```
pub fn custom<V>(sql: impl Into<String>, args: impl IntoIterator<Item = SqlValue>) -> Expr<V> {
    Expr::from_node(Node::Custom {
        sql: sql.into(),
        args: args.into_iter().collect(),
    })
}

/// Anything usable where an expression of type `V` is expected: an
/// [`Expr<V>`], a [`Column`] whose values are `V` (or `Option<V>`), or a
/// plain Rust value, which is bound as a parameter.
pub trait IntoExpr<V> {
    /// The expression.
    fn into_expr(self) -> Expr<V>;
}

impl<V> IntoExpr<V> for Expr<V> {
    fn into_expr(self) -> Expr<V> {
        self
    }
}

impl<V: ToSql> IntoExpr<V> for V {
    fn into_expr(self) -> Expr<V> {
        Expr::value(self)
    }
}

impl IntoExpr<String> for &str {
    fn into_expr(self) -> Expr<String> {
        Expr::value(self)
    }
}

impl IntoExpr<Vec<u8>> for &[u8] {
    fn into_expr(self) -> Expr<Vec<u8>> {
        Expr::value(self)
    }
}

impl<T: Table, V: ColumnType> IntoExpr<V::Base> for Column<T, V> {
    fn into_expr(self) -> Expr<V::Base> {
        Expr::from_node(Node::Column {
            table: T::NAME,
            name: self.name(),
        })
    }
}

/// A column of table `T`, whatever its value type: for lists of columns
/// such as conflict targets.
pub trait ColumnOf<T> {
    /// The column's SQL name.
    fn sql_name(&self) -> &'static str;
}

impl<T: Table, V: ColumnType> ColumnOf<T> for Column<T, V> {
    fn sql_name(&self) -> &'static str {
        self.name()
    }
}

/// A sort key for `ORDER BY`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ordering {
    pub(crate) node: Node,
    pub(crate) descending: bool,
}

fn binary<V>(op: &'static str, left: Node, right: Node) -> Expr<V> {
    Expr::from_node(Node::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    })
}

/// The methods every expression-like value has (columns and expressions).
macro_rules! expression_methods {
    ($base:ty, $self_node:expr) => {
        /// `self = other`.
        pub fn eq(self, other: impl IntoExpr<$base>) -> Expr<bool> {
            binary("=", $self_node(self), other.into_expr().node)
        }
        /// `self <> other`.
        pub fn ne(self, other: impl IntoExpr<$base>) -> Expr<bool> {
            binary("<>", $self_node(self), other.into_expr().node)
        }
        /// `self < other`.
        pub fn lt(self, other: impl IntoExpr<$base>) -> Expr<bool> {
            binary("<", $self_node(self), other.into_expr().node)
        }
        /// `self <= other`.
        pub fn le(self, other: impl IntoExpr<$base>) -> Expr<bool> {
            binary("<=", $self_node(self), other.into_expr().node)
        }
        /// `self > other`.
        pub fn gt(self, other: impl IntoExpr<$base>) -> Expr<bool> {
            binary(">", $self_node(self), other.into_expr().node)
        }
        /// `self >= other`.
        pub fn ge(self, other: impl IntoExpr<$base>) -> Expr<bool> {
            binary(">=", $self_node(self), other.into_expr().node)
        }
        /// `self IS NULL`.
        pub fn is_null(self) -> Expr<bool> {
            Expr::from_node(Node::Postfix {
                operand: Box::new($self_node(self)),
                op: " IS NULL",
            })
        }
        /// `self IS NOT NULL`.
        pub fn is_not_null(self) -> Expr<bool> {
            Expr::from_node(Node::Postfix {
                operand: Box::new($self_node(self)),
                op: " IS NOT NULL",
            })
        }
        /// `self IN (…)`; an empty list is never true.
        pub fn is_in<I: IntoExpr<$base>>(self, list: impl IntoIterator<Item = I>) -> Expr<bool> {
            let list = list.into_iter().map(|i| i.into_expr().node).collect();
            Expr::from_node(Node::InList {
                operand: Box::new($self_node(self)),
                list,
                negated: false,
            })
        }
        /// `self NOT IN (…)`.
        pub fn is_not_in<I: IntoExpr<$base>>(
            self,
            list: impl IntoIterator<Item = I>,
        ) -> Expr<bool> {
            let list = list.into_iter().map(|i| i.into_expr().node).collect();
            Expr::from_node(Node::InList {
                operand: Box::new($self_node(self)),
                list,
                negated: true,
            })
        }
        /// `self LIKE pattern`.
        pub fn like(self, pattern: impl IntoExpr<String>) -> Expr<bool> {
            binary("LIKE", $self_node(self), pattern.into_expr().node)
        }
        /// `CAST(self AS …)` to the SQL type of `T` (drift's `cast<T>()`).
        pub fn cast<U: ColumnType>(self) -> Expr<U::Base> {
            Expr::from_node(Node::Cast {
                operand: Box::new($self_node(self)),
                to: U::SQL_TYPE,
            })
        }
        /// Ascending sort key.
        pub fn asc(self) -> Ordering {
            Ordering {
                node: $self_node(self),
                descending: false,
            }
        }
        /// Descending sort key.
        pub fn desc(self) -> Ordering {
            Ordering {
                node: $self_node(self),
                descending: true,
            }
        }
        /// `COUNT(self)`: the number of non-null values.
        pub fn count(self) -> Expr<i64> {
            Expr::from_node(Node::Function {
                name: "COUNT",
                args: vec![$self_node(self)],
                distinct: false,
            })
        }
        /// `COUNT(DISTINCT self)`.
        pub fn count_distinct(self) -> Expr<i64> {
            Expr::from_node(Node::Function {
                name: "COUNT",
                args: vec![$self_node(self)],
                distinct: true,
            })
        }
        /// `MAX(self)`, `NULL` over no rows.
        pub fn max(self) -> Expr<Option<$base>> {
            Expr::from_node(Node::Function {
                name: "MAX",
                args: vec![$self_node(self)],
                distinct: false,
            })
        }
        /// `MIN(self)`, `NULL` over no rows.
        pub fn min(self) -> Expr<Option<$base>> {
            Expr::from_node(Node::Function {
                name: "MIN",
                args: vec![$self_node(self)],
                distinct: false,
            })
        }
        /// `SUM(self)`, `NULL` over no rows.
        pub fn sum(self) -> Expr<Option<$base>> {
            Expr::from_node(Node::Function {
                name: "SUM",
                args: vec![$self_node(self)],
                distinct: false,
            })
        }
        /// `AVG(self)`, `NULL` over no rows.
        pub fn avg(self) -> Expr<Option<f64>> {
            Expr::from_node(Node::Function {
                name: "AVG",
                args: vec![$self_node(self)],
                distinct: false,
            })
        }
    };
}

impl<V> Expr<V> {
    expression_methods!(V, |e: Expr<V>| e.node);
}

impl<T: Table, V: ColumnType> Column<T, V> {
    expression_methods!(V::Base, |c: Column<T, V>| Node::Column {
        table: T::NAME,
        name: c.name()
    });
}

impl Expr<bool> {
    /// `self AND other`.
    pub fn and(self, other: impl IntoExpr<bool>) -> Expr<bool> {
        binary("AND", self.node, other.into_expr().node)
    }

    /// `self OR other`.
    pub fn or(self, other: impl IntoExpr<bool>) -> Expr<bool> {
        binary("OR", self.node, other.into_expr().node)
    }
}

impl ops::Not for Expr<bool> {
    type Output = Expr<bool>;
    fn not(self) -> Expr<bool> {
        Expr::from_node(Node::Prefix {
            op: "NOT ",
            operand: Box::new(self.node),
        })
    }
}

/// Arithmetic on numeric expressions and columns: `Todo::PRIORITY + 1`.
macro_rules! arithmetic {
    ($($trait:ident $method:ident $op:literal),*) => {$(
        impl<V, R: IntoExpr<V>> ops::$trait<R> for Expr<V> {
            type Output = Expr<V>;
            fn $method(self, rhs: R) -> Expr<V> {
                binary($op, self.node, rhs.into_expr().node)
            }
        }

        impl<T: Table, V: ColumnType, R: IntoExpr<V::Base>> ops::$trait<R> for Column<T, V> {
            type Output = Expr<V::Base>;
            fn $method(self, rhs: R) -> Expr<V::Base> {
                binary($op, self.into_expr().node, rhs.into_expr().node)
            }
        }
    )*};
}

arithmetic!(Add add "+", Sub sub "-", Mul mul "*", Div div "/", Rem rem "%");

impl<V> ops::Neg for Expr<V> {
    type Output = Expr<V>;
    fn neg(self) -> Expr<V> {
        Expr::from_node(Node::Prefix {
            op: "-",
            operand: Box::new(self.node),
        })
    }
}

/// `COUNT(*)`.
pub fn count_all() -> Expr<i64> {
    Expr::from_node(Node::CountAll)
}
