//! A generated input directory (`shopflow generate --out-dir`), replayed in
//! event-time slices with bounded memory and validation on every worker.
//!
//! [`Plan::scan`] reads every file once, cheaply: it splits each into chunks
//! of [`CHUNK_LINES`] lines and notes, per chunk, the earliest dataflow time
//! of its lines, read from the line's own time field without parsing the
//! rest (a line where that field is absent, repeated or unreadable is parsed
//! in full; one that does not validate constrains nothing, as it will be
//! rejected). From that it fixes one schedule of chunks, the same on every
//! worker: next is always the chunk of the file whose remaining lines hold
//! the earliest time, and after each chunk the inputs may advance to the
//! earliest time of every line not yet offered. Files written in time order
//! with some late lines (what producers and the generator write) so advance
//! steadily; a file that is not ordered at all still replays correctly, only
//! with more of it in memory at once.
//!
//! Every worker reads every chunk ([`FileSlices`]) but validates only the
//! lines it owns: events by their id (the FNV-1a route of `run::route`, read
//! from the raw line), so all versions of an id meet in one feeder; reference
//! data on worker 0, in file order, so FX corrections apply as written.

use memchr::memmem;
use shopflow_dataflow::bounded::{Slices, schedule};
use shopflow_dataflow::input::Feeder;
use shopflow_dataflow::run::{Input, route};
use shopflow_dataflow::{Settings, Time};
use shopflow_model::{Date, EventKind, Timestamp};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Lines per chunk: the unit of the schedule.
pub const CHUNK_LINES: usize = 8192;

/// The files in the order they are offered at equal times: reference data
/// first, so it comes before the events it applies to.
pub const ORDER: [EventKind; 6] = [
    EventKind::Fx,
    EventKind::Product,
    EventKind::User,
    EventKind::Click,
    EventKind::Cart,
    EventKind::Purchase,
];

/// Rejected lines per file kind and reason.
pub type Rejected = BTreeMap<(EventKind, &'static str), u64>;

/// A chunk of one file: its bytes and the earliest time of its lines.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    start: u64,
    end: u64,
    /// Index of its first line in the file.
    first_line: u64,
    /// Earliest dataflow time of a line in it (`Time::MAX` if none validates).
    min_time: Time,
}

/// One input file and its chunks.
#[derive(Debug)]
struct FilePlan {
    kind: EventKind,
    path: PathBuf,
    chunks: Vec<Chunk>,
}

/// The files of a directory and the order their chunks are offered in.
#[derive(Debug)]
pub struct Plan {
    files: Vec<FilePlan>,
    /// (file, chunk, bound after it).
    steps: Vec<(usize, usize, Time)>,
    lines: u64,
}

impl Plan {
    /// Scans `dir` (reference files first, so they come before the events
    /// of the same time); a missing file counts as empty, with a warning.
    pub fn scan(dir: &Path, settings: &Settings) -> Result<Plan, String> {
        Plan::scan_chunked(dir, settings, CHUNK_LINES)
    }

    /// [`Plan::scan`] with `chunk_lines` lines per chunk (tests use small ones).
    pub fn scan_chunked(
        dir: &Path,
        settings: &Settings,
        chunk_lines: usize,
    ) -> Result<Plan, String> {
        let mut files = Vec::new();
        let mut lines = 0;
        for kind in ORDER {
            let path = dir.join(format!("{}.jsonl", kind.topic()));
            if !path.exists() {
                tracing::warn!(file = %path.display(), "missing input file; treating it as empty");
                continue;
            }
            let (chunks, n) = scan_file(&path, kind, settings, chunk_lines.max(1))?;
            lines += n;
            files.push(FilePlan { kind, path, chunks });
        }
        if files.is_empty() {
            return Err(format!(
                "no input files in {}; expected the files `shopflow generate` writes",
                dir.display()
            ));
        }
        let mins: Vec<Vec<Time>> = files
            .iter()
            .map(|f| f.chunks.iter().map(|c| c.min_time).collect())
            .collect();
        let steps = schedule(&mins);
        Ok(Plan {
            files,
            steps,
            lines,
        })
    }

    /// Lines in all files.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Chunks in the schedule.
    pub fn chunks(&self) -> usize {
        self.steps.len()
    }
}

/// The lines of a chunk's bytes: split on `\n`, without the empty tail after
/// a final newline.
fn lines_of(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = body.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty)
}

/// The chunks of one file and its line count.
fn scan_file(
    path: &Path,
    kind: EventKind,
    settings: &Settings,
    chunk_lines: usize,
) -> Result<(Vec<Chunk>, u64), String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut chunks = Vec::new();
    let mut line = Vec::new();
    let (mut offset, mut line_no) = (0u64, 0u64);
    let mut current: Option<Chunk> = None;
    let mut in_chunk = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        let chunk = current.get_or_insert(Chunk {
            start: offset,
            end: offset,
            first_line: line_no,
            min_time: Time::MAX,
        });
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Some(t) = line_time(kind, text) {
            chunk.min_time = chunk.min_time.min(settings.tick(t));
        }
        offset += n as u64;
        chunk.end = offset;
        line_no += 1;
        in_chunk += 1;
        if in_chunk == chunk_lines {
            chunks.extend(current.take());
            in_chunk = 0;
        }
    }
    chunks.extend(current);
    Ok((chunks, line_no))
}

/// The record time of one line (see [`Input::ts`]): its time field read
/// directly when it occurs exactly once, else from a full validation;
/// `None` for a line that does not validate.
fn line_time(kind: EventKind, line: &[u8]) -> Option<i64> {
    let key: &[u8] = match kind {
        EventKind::Fx => b"\"date\":\"",
        EventKind::Product | EventKind::User => b"\"updated_at\":\"",
        _ => b"\"ts\":\"",
    };
    if let Some(value) = single_string(line, key) {
        let text = std::str::from_utf8(value).ok();
        let fast = match kind {
            EventKind::Fx => text.and_then(|t| Date::parse(t).ok()).map(|d| d.start().0),
            _ => text
                .and_then(|t| Timestamp::parse_rfc3339(t).ok())
                .map(|t| t.0),
        };
        if fast.is_some() {
            return fast;
        }
    }
    Input::from_line(kind, line).ok().map(|i| i.ts())
}

/// The string value after `key` (which ends with the opening quote), when
/// `key` occurs exactly once and the value has no escapes.
fn single_string<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut hits = memmem::find_iter(line, key);
    let at = hits.next()? + key.len();
    if hits.next().is_some() {
        return None;
    }
    let len = memchr::memchr2(b'"', b'\\', &line[at..])?;
    (line[at + len] == b'"').then(|| &line[at..at + len])
}

/// One worker's share of a [`Plan`].
pub struct FileSlices {
    plan: Arc<Plan>,
    step: usize,
    index: usize,
    peers: usize,
    handles: Vec<File>,
    buf: Vec<u8>,
    rejected: Rejected,
    /// Where the rejections go when the share is done.
    report: Arc<Mutex<Rejected>>,
    error: Arc<Mutex<Option<String>>>,
}

impl FileSlices {
    /// Worker `index` of `peers`'s share; rejections are added to `report`
    /// and a read error is left in `error` (the share then ends early).
    pub fn new(
        plan: Arc<Plan>,
        index: usize,
        peers: usize,
        report: Arc<Mutex<Rejected>>,
        error: Arc<Mutex<Option<String>>>,
    ) -> FileSlices {
        FileSlices {
            plan,
            step: 0,
            index,
            peers,
            handles: Vec::new(),
            buf: Vec::new(),
            rejected: Rejected::new(),
            report,
            error,
        }
    }

    fn owner(&self, kind: EventKind, line: &[u8], line_no: u64) -> usize {
        if matches!(kind, EventKind::Fx | EventKind::Product | EventKind::User) {
            return 0;
        }
        match single_string(line, b"\"event_id\":\"").and_then(|id| std::str::from_utf8(id).ok()) {
            Some(id) => route(id, self.peers),
            None => (line_no % self.peers as u64) as usize,
        }
    }

    fn read_chunk(&mut self, file: usize, chunk: Chunk) -> Result<(), String> {
        if self.handles.is_empty() {
            for f in &self.plan.files {
                let h = File::open(&f.path)
                    .map_err(|e| format!("cannot read {}: {e}", f.path.display()))?;
                self.handles.push(h);
            }
        }
        self.buf.resize((chunk.end - chunk.start) as usize, 0);
        self.handles[file]
            .read_exact_at(&mut self.buf, chunk.start)
            .map_err(|e| {
                format!(
                    "cannot read {}: {e} (did it change during the replay?)",
                    self.plan.files[file].path.display()
                )
            })
    }

    fn finish(&mut self) {
        let mut report = self.report.lock().expect("no worker panicked");
        for (k, n) in std::mem::take(&mut self.rejected) {
            *report.entry(k).or_default() += n;
        }
    }
}

impl Slices for FileSlices {
    fn next(&mut self, feeder: &mut Feeder) -> Option<Time> {
        let Some(&(file, chunk, bound)) = self.plan.steps.get(self.step) else {
            self.finish();
            return None;
        };
        self.step += 1;
        let plan = self.plan.clone();
        let (kind, chunk) = (plan.files[file].kind, plan.files[file].chunks[chunk]);
        if let Err(e) = self.read_chunk(file, chunk) {
            *self.error.lock().expect("no worker panicked") = Some(e);
            self.step = plan.steps.len();
            self.finish();
            return None;
        }
        let buf = std::mem::take(&mut self.buf);
        for (n, line) in lines_of(&buf).enumerate() {
            if self.owner(kind, line, chunk.first_line + n as u64) != self.index {
                continue;
            }
            match Input::from_line(kind, line) {
                Ok(input) => {
                    input.feed(feeder);
                }
                Err(e) => *self.rejected.entry((kind, e.reason.code())).or_default() += 1,
            }
        }
        self.buf = buf;
        // Past the last chunk nothing remains: stay where we are and let the
        // run close the inputs.
        Some(if bound == Time::MAX {
            feeder.time()
        } else {
            bound
        })
    }
}
