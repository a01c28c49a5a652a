//! Bounded runs: a replay of a generated directory ([`from_files`]), or of
//! days of the lake's raw layer ([`from_lake`]), through the same validation
//! and dataflow as the live run; results go to CSV files and, from the lake,
//! into the warehouse and the lake's curated layer.

mod files;
mod lake;

pub use files::{FilesPlan, Summary, Written, from_files};
pub(crate) use lake::curate_day;
pub use lake::{LakePlan, LakeSummary, from_lake};

use anyhow::Context;
use shopflow_dataflow::{Table, Tables};
use std::path::Path;

/// Writes every warehouse table (and `dq_conflicts`) as `<table>.csv` into `dir`.
pub(crate) fn write_csv(tables: &Tables, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for table in Table::WAREHOUSE.into_iter().chain([Table::Conflicts]) {
        let path = dir.join(format!("{}.csv", table.name()));
        std::fs::write(&path, tables.to_csv(table))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
