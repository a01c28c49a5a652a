//! Table contents for a bounded run's CSV output, in bounded memory.
//!
//! [`SpillTables`] applies completed times like [`Tables`] (the same freeze
//! rule), but fact rows that can no longer change leave memory: once the
//! completed time passes `order_expiry(ts)` of a fact (the last time the
//! dataflow can still price, re-price or replace it), the row is rendered as
//! its CSV line and kept in a sorted run on disk. [`SpillTables::write_csv`]
//! merges the runs with what is still in memory, so each file comes out
//! exactly as [`Tables::to_csv`] would write it: rows in key order, and for a
//! key written twice (an id re-sent after the deduplication forgot it) the
//! newer row. Windows, dimensions and conflicts grow with keys, not events,
//! and stay in memory.

use shopflow_dataflow::{Row, Settings, Table, Tables, Time, csv};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The tables whose rows are spilled: one row per event.
const FACTS: [Table; 4] = [
    Table::FactClicks,
    Table::FactCart,
    Table::FactOrders,
    Table::FactOrderItems,
];

/// How much event time passes between two evictions (ms).
const EVICT_EVERY: Time = 10 * 60_000;

/// Tables whose final fact rows live in sorted runs on disk.
pub struct SpillTables {
    tables: Tables,
    settings: Settings,
    dir: PathBuf,
    runs: BTreeMap<Table, Vec<PathBuf>>,
    evicted_upto: Time,
    rows: BTreeMap<Table, u64>,
}

impl SpillTables {
    /// Empty tables; runs go to a private directory inside `parent`.
    pub fn new(settings: Settings, parent: &Path) -> std::io::Result<SpillTables> {
        let dir = parent.join(format!(".shopflow-spill-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(SpillTables {
            tables: Tables::new(settings.clone()),
            settings,
            dir,
            runs: BTreeMap::new(),
            evicted_upto: 0,
            rows: BTreeMap::new(),
        })
    }

    /// Applies the consolidated changes of one completed time, then spills
    /// the facts that became final (every [`EVICT_EVERY`] of event time).
    pub fn apply_time(&mut self, time: Time, batch: Vec<(Row, isize)>) -> std::io::Result<()> {
        self.tables.apply_time(time, batch);
        if time != Time::MAX && time >= self.evicted_upto + EVICT_EVERY {
            self.evicted_upto = time;
            self.evict(time)?;
        }
        Ok(())
    }

    /// The in-memory tables (windows, dimensions, conflicts, recent facts).
    pub fn memory(&self) -> &Tables {
        &self.tables
    }

    /// Fact rows written to runs so far.
    pub fn spilled(&self) -> u64 {
        self.rows.values().sum()
    }

    /// Rows of `table`, spilled or not.
    pub fn count(&self, table: Table) -> u64 {
        self.rows.get(&table).copied().unwrap_or(0) + self.tables.rows(table).count() as u64
    }

    fn evict(&mut self, time: Time) -> std::io::Result<()> {
        let s = &self.settings;
        for table in FACTS {
            let gone = self.tables.take(table, |row| {
                row.event_time().is_some_and(|ts| s.order_expiry(ts) < time)
            });
            if gone.is_empty() {
                continue;
            }
            *self.rows.entry(table).or_default() += gone.len() as u64;
            let runs = self.runs.entry(table).or_default();
            let path = self
                .dir
                .join(format!("{}-{}.run", table.name(), runs.len()));
            let mut out = BufWriter::new(File::create(&path)?);
            let mut line = String::new();
            for (key, row) in gone {
                line.clear();
                csv::write_record(&mut line, &row.fields());
                put(&mut out, key.as_bytes())?;
                put(&mut out, line.as_bytes())?;
            }
            out.flush()?;
            runs.push(path);
        }
        Ok(())
    }

    /// Writes every warehouse table (and `dq_conflicts`) as `<table>.csv`
    /// into `dir`, then removes the runs.
    pub fn write_csv(self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for table in Table::WAREHOUSE.into_iter().chain([Table::Conflicts]) {
            let path = dir.join(format!("{}.csv", table.name()));
            let mut out = BufWriter::new(File::create(&path)?);
            let mut text = String::new();
            csv::write_record(&mut text, csv::header(table));
            out.write_all(text.as_bytes())?;
            let runs = self.runs.get(&table).map(Vec::as_slice).unwrap_or(&[]);
            merge(runs, &self.tables, table, &mut out)?;
            out.flush()?;
        }
        Ok(())
    }
}

impl Drop for SpillTables {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn put(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(bytes)
}

fn get(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut bytes = vec![0; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

/// One sorted source of (key, line): a run on disk or the memory.
enum Source<'a> {
    Run(BufReader<File>),
    Memory(Box<dyn Iterator<Item = (&'a String, &'a Row)> + 'a>),
}

impl Source<'_> {
    fn next(&mut self) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        match self {
            Source::Run(r) => match get(r)? {
                None => Ok(None),
                Some(key) => {
                    let line = get(r)?.ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "truncated spill run")
                    })?;
                    Ok(Some((key, line)))
                }
            },
            Source::Memory(rows) => Ok(rows.next().map(|(key, row)| {
                let mut line = String::new();
                csv::write_record(&mut line, &row.fields());
                (key.clone().into_bytes(), line.into_bytes())
            })),
        }
    }
}

/// Merges the runs (oldest first) and the memory (newest) in key order; of
/// equal keys the newest source wins.
fn merge(
    runs: &[PathBuf],
    tables: &Tables,
    table: Table,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut sources: Vec<Source<'_>> = Vec::with_capacity(runs.len() + 1);
    for path in runs {
        sources.push(Source::Run(BufReader::new(File::open(path)?)));
    }
    sources.push(Source::Memory(Box::new(tables.keyed(table))));
    let mut heap = BinaryHeap::new();
    let mut lines: Vec<Option<Vec<u8>>> = vec![None; sources.len()];
    for (i, source) in sources.iter_mut().enumerate() {
        if let Some((key, line)) = source.next()? {
            heap.push(Reverse((key, Reverse(i))));
            lines[i] = Some(line);
        }
    }
    // Popped in key order, newest source first among equal keys.
    let mut last: Option<Vec<u8>> = None;
    while let Some(Reverse((key, Reverse(i)))) = heap.pop() {
        let line = lines[i].take().expect("a line per queued key");
        if last.as_ref() != Some(&key) {
            out.write_all(&line)?;
        }
        if let Some((k, l)) = sources[i].next()? {
            heap.push(Reverse((k, Reverse(i))));
            lines[i] = Some(l);
        }
        last = Some(key);
    }
    Ok(())
}
