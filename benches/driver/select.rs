//! Which workloads and systems a run covers, from `--workload` and `--system`.

use super::{System, Workload};

/// The workloads and systems asked for; none asked means all.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    workloads: Vec<Workload>,
    systems: Vec<System>,
}

/// The (workload, system) pairs to run.
#[derive(Debug)]
pub(crate) struct Plan {
    /// What to run, in report order.
    pub(crate) rows: Vec<(Workload, System)>,
}

impl Selection {
    /// Adds workloads from a comma-separated list.
    ///
    /// # Errors
    ///
    /// An unknown name.
    pub(crate) fn add_workloads(&mut self, list: &str) -> Result<(), String> {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let workload = Workload::parse(name)?;
            if !self.workloads.contains(&workload) {
                self.workloads.push(workload);
            }
        }
        Ok(())
    }

    /// Adds systems from a comma-separated list.
    ///
    /// # Errors
    ///
    /// An unknown name.
    pub(crate) fn add_systems(&mut self, list: &str) -> Result<(), String> {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let system = System::parse(name)?;
            if !self.systems.contains(&system) {
                self.systems.push(system);
            }
        }
        Ok(())
    }

    /// Parses the shared flags from `args`, leaving the others.
    ///
    /// # Errors
    ///
    /// A flag without its value, or an unknown name.
    pub(crate) fn parse(args: Vec<String>) -> Result<(Self, Vec<String>), String> {
        let mut selection = Selection::default();
        let mut rest = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--workload" | "--system" => {
                    let value = args
                        .next()
                        .ok_or_else(|| format!("`{arg}` needs a value"))?;
                    if arg == "--workload" {
                        selection.add_workloads(&value)?;
                    } else {
                        selection.add_systems(&value)?;
                    }
                }
                _ => {
                    if let Some(value) = arg.strip_prefix("--workload=") {
                        selection.add_workloads(value)?;
                    } else if let Some(value) = arg.strip_prefix("--system=") {
                        selection.add_systems(value)?;
                    } else {
                        rest.push(arg);
                    }
                }
            }
        }
        Ok((selection, rest))
    }

    /// The pairs to run.
    ///
    /// # Errors
    ///
    /// A selection with nothing to run.
    pub(crate) fn plan(&self) -> Result<Plan, String> {
        let workloads: &[Workload] = if self.workloads.is_empty() {
            &Workload::ALL
        } else {
            &self.workloads
        };
        let mut rows = Vec::new();
        for &workload in workloads {
            for &system in workload.systems() {
                if !self.systems.is_empty() && !self.systems.contains(&system) {
                    continue;
                }
                rows.push((workload, system));
            }
        }
        if rows.is_empty() {
            return Err(
                "nothing to run: no selected system runs the selected workloads".to_owned(),
            );
        }
        Ok(Plan { rows })
    }
}
