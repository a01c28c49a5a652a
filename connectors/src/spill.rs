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
use std::collections::{BTreeMap, BinaryHeap, HashMap};
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

/// A fact row not yet final: its CSV line and when it becomes final.
struct Hot {
    line: String,
    final_at: Time,
}

/// Tables whose final fact rows live in sorted runs on disk.
pub struct SpillTables {
    /// Everything but the facts.
    tables: Tables,
    settings: Settings,
    dir: PathBuf,
    /// Facts not yet final, by table and key.
    hot: BTreeMap<Table, HashMap<String, Hot>>,
    /// The same facts by the time they become final (stale entries of keys
    /// written again are skipped).
    queue: BTreeMap<Time, Vec<(Table, String)>>,
    runs: BTreeMap<Table, Vec<PathBuf>>,
    evicted_upto: Time,
    spilled: BTreeMap<Table, u64>,
}

/// The name of a replay's private directory, before its process id.
const SPILL_PREFIX: &str = ".shopflow-spill-";

/// Removes spill directories in `parent` whose process no longer runs.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(SPILL_PREFIX) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists();
        if !alive && pid.parse::<u32>().is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl SpillTables {
    /// Empty tables; runs go to a private directory inside `parent`. The
    /// directories left there by replays that were killed (their process is
    /// gone) are removed first.
    pub fn new(settings: Settings, parent: &Path) -> std::io::Result<SpillTables> {
        remove_stale(parent);
        let dir = parent.join(format!("{SPILL_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(SpillTables {
            tables: Tables::new(settings.clone()),
            settings,
            dir,
            hot: BTreeMap::new(),
            queue: BTreeMap::new(),
            runs: BTreeMap::new(),
            evicted_upto: 0,
            spilled: BTreeMap::new(),
        })
    }

    /// Applies the consolidated changes of one completed time, then spills
    /// the facts that became final (every [`EVICT_EVERY`] of event time).
    /// Facts are upserted and never deleted (`apply.rs`): an insertion
    /// replaces the row with its key, a retraction changes nothing.
    pub fn apply_time(&mut self, time: Time, batch: Vec<(Row, isize)>) -> std::io::Result<()> {
        let mut rest = Vec::with_capacity(batch.len());
        for (row, diff) in batch {
            let table = row.table();
            if !FACTS.contains(&table) {
                rest.push((row, diff));
                continue;
            }
            if diff <= 0 {
                continue;
            }
            let ts = row.event_time().expect("a fact has an event time");
            let final_at = self.settings.order_expiry(ts);
            let mut line = String::new();
            csv::write_record(&mut line, &row.fields());
            let key = row.key();
            self.queue
                .entry(final_at)
                .or_default()
                .push((table, key.clone()));
            self.hot
                .entry(table)
                .or_default()
                .insert(key, Hot { line, final_at });
        }
        self.tables.apply_time(time, rest);
        if time != Time::MAX && time >= self.evicted_upto + EVICT_EVERY {
            self.evicted_upto = time;
            self.evict(time)?;
        }
        Ok(())
    }

    /// The in-memory tables other than the facts (windows, dimensions, conflicts).
    pub fn memory(&self) -> &Tables {
        &self.tables
    }

    /// Fact rows written to runs so far.
    pub fn spilled(&self) -> u64 {
        self.spilled.values().sum()
    }

    /// Rows of `table`, spilled or not.
    pub fn count(&self, table: Table) -> u64 {
        let hot = self.hot.get(&table).map_or(0, |h| h.len() as u64);
        self.spilled.get(&table).copied().unwrap_or(0)
            + hot
            + self.tables.rows(table).count() as u64
    }

    /// Moves the facts final before `time` to one new sorted run per table.
    fn evict(&mut self, time: Time) -> std::io::Result<()> {
        let later = self.queue.split_off(&time);
        let due = std::mem::replace(&mut self.queue, later);
        let mut gone: BTreeMap<Table, Vec<(String, String)>> = BTreeMap::new();
        for (final_at, keys) in due {
            for (table, key) in keys {
                let hot = self.hot.get_mut(&table).expect("queued facts are hot");
                // A key written again later is due at its later time.
                if hot.get(&key).is_some_and(|h| h.final_at == final_at) {
                    let row = hot.remove(&key).expect("present");
                    gone.entry(table).or_default().push((key, row.line));
                }
            }
        }
        for (table, mut rows) in gone {
            rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            *self.spilled.entry(table).or_default() += rows.len() as u64;
            let runs = self.runs.entry(table).or_default();
            let path = self
                .dir
                .join(format!("{}-{}.run", table.name(), runs.len()));
            let mut out = BufWriter::new(File::create(&path)?);
            for (key, line) in rows {
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
            if FACTS.contains(&table) {
                let runs = self.runs.get(&table).map(Vec::as_slice).unwrap_or(&[]);
                let mut hot: Vec<(&String, &Hot)> =
                    self.hot.get(&table).into_iter().flatten().collect();
                hot.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let memory = hot
                    .into_iter()
                    .map(|(k, h)| (k.as_bytes().to_vec(), h.line.as_bytes().to_vec()));
                merge(runs, Box::new(memory), &mut out)?;
            } else {
                for row in self.tables.rows(table) {
                    text.clear();
                    csv::write_record(&mut text, &row.fields());
                    out.write_all(text.as_bytes())?;
                }
            }
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

/// Sorted (key, line) pairs still in memory.
type Memory<'a> = Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a>;

/// One sorted source of (key, line): a run on disk or the memory.
enum Source<'a> {
    Run(BufReader<File>),
    Memory(Memory<'a>),
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
            Source::Memory(rows) => Ok(rows.next()),
        }
    }
}

/// Merges the runs (oldest first) and the memory (newest) in key order; of
/// equal keys the newest source wins.
fn merge(runs: &[PathBuf], memory: Memory<'_>, out: &mut impl Write) -> std::io::Result<()> {
    let mut sources: Vec<Source<'_>> = Vec::with_capacity(runs.len() + 1);
    for path in runs {
        sources.push(Source::Run(BufReader::new(File::open(path)?)));
    }
    sources.push(Source::Memory(memory));
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
