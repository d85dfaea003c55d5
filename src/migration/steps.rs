//! [`StepByStep`]: one function per version step, each run against the
//! schema of the version it migrates to (drift's `stepByStep`), and a
//! clear error for files older than the oldest step an app still ships.

use super::Migrator;
use crate::error::{Error, Result};
use crate::schema::{Schema, Snapshot};

/// A migration written as one step per version: step `N` brings a file
/// from version `N - 1` to `N`. Each step gets a [`Migrator`] against
/// version `N`'s schema when a snapshot of `N` was given
/// ([`StepByStep::snapshot`]), otherwise against the code's schema.
///
/// ```
/// # use driftwood::prelude::*;
/// # use driftwood::migration::StepByStep;
/// fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
///     StepByStep::new()
///         .step(2, |m| m.add_column(("todos", "due_date")))
///         .step(3, |m| m.add_column(("todos", "priority")))
///         .run(m, from, to)
/// }
/// ```
#[derive(Default)]
pub struct StepByStep<'f> {
    steps: Vec<(u32, Box<StepFn<'f>>)>,
    snapshots: Vec<(u32, Schema)>,
}

/// One step's function.
type StepFn<'f> = dyn Fn(&Migrator<'_>) -> Result<()> + 'f;

impl<'f> StepByStep<'f> {
    /// No steps yet.
    pub fn new() -> Self {
        StepByStep::default()
    }

    /// The step that brings a file to version `to` from `to - 1`.
    pub fn step(mut self, to: u32, step: impl Fn(&Migrator<'_>) -> Result<()> + 'f) -> Self {
        self.steps.push((to, Box::new(step)));
        self
    }

    /// The schema of version `snapshot.schema_version`, for the step to
    /// that version.
    pub fn snapshot(mut self, snapshot: Snapshot) -> Self {
        self.snapshots
            .push((snapshot.schema_version, snapshot.schema));
        self
    }

    /// Runs the steps from `from + 1` to `to`, in order.
    ///
    /// # Errors
    ///
    /// [`Error::Migration`] when a step in that range is missing — for a
    /// file older than the oldest step the app ships, naming both versions
    /// —, when `from > to` (a downgrade is `on_downgrade`'s), when two
    /// steps go to one version or one to version 0, and any step's own
    /// error. `from == to` runs nothing.
    pub fn run(mut self, m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
        let fail = |message: String| Error::Migration { from, to, message };
        if from > to {
            return Err(fail(
                "StepByStep only upgrades; write the downgrade in Database::on_downgrade".into(),
            ));
        }
        self.steps.sort_by_key(|(version, _)| *version);
        if self.steps.iter().any(|(version, _)| *version == 0) {
            return Err(fail("a step to version 0 can never run".into()));
        }
        if let Some(pair) = self.steps.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(fail(format!("two steps to version {}", pair[0].0)));
        }
        if from == to {
            return Ok(());
        }
        let Some(oldest) = self.steps.first().map(|(version, _)| version - 1) else {
            return Err(fail("no migration steps are defined".into()));
        };
        if from < oldest {
            return Err(fail(format!(
                "the file is at version {from}, older than the oldest version this app can \
                 migrate from ({oldest}): its steps before version {} were removed",
                oldest + 1
            )));
        }
        for version in from + 1..=to {
            let Some((_, step)) = self.steps.iter().find(|(v, _)| *v == version) else {
                return Err(fail(format!("no migration step to version {version}")));
            };
            let schema = self
                .snapshots
                .iter()
                .find(|(v, _)| *v == version)
                .map(|(_, schema)| schema.clone());
            tracing::info!(target: "driftwood::migration", version, "migration step");
            match schema {
                Some(schema) => step(&m.with_schema(schema))?,
                None => step(m)?,
            }
        }
        Ok(())
    }
}
