//! Where generated lines go.

use shopflow_model::{EventKind, Timestamp};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Receives generated lines in emission (arrival) order.
pub trait Sink {
    /// One line of `kind`. `arrival` is the event time at which the line is
    /// emitted: for a late event, later than its own `ts`.
    fn emit(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8]) -> io::Result<()>;

    /// Called once at the end; flush buffers here.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `<topic>.jsonl` files (one per [`EventKind`]) into a directory.
pub struct FileSink {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
}

impl FileSink {
    /// Creates the directory and the six files, truncating old ones.
    pub fn create(dir: &Path) -> io::Result<FileSink> {
        std::fs::create_dir_all(dir)?;
        let files = EventKind::ALL
            .iter()
            .map(|k| {
                let path = dir.join(format!("{}.jsonl", k.topic()));
                File::create(path).map(|f| BufWriter::with_capacity(1 << 20, f))
            })
            .collect::<io::Result<_>>()?;
        Ok(FileSink {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Sink for FileSink {
    fn emit(&mut self, kind: EventKind, _arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        let f = &mut self.files[kind as usize];
        f.write_all(line)?;
        f.write_all(b"\n")
    }

    fn finish(&mut self) -> io::Result<()> {
        self.files.iter_mut().try_for_each(|f| f.flush())
    }
}

/// Discards lines, counting bytes (for benchmarks).
#[derive(Default)]
pub struct CountingSink {
    /// Lines received.
    pub lines: u64,
    /// Bytes received.
    pub bytes: u64,
}

impl Sink for CountingSink {
    fn emit(&mut self, _kind: EventKind, _arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        self.lines += 1;
        self.bytes += line.len() as u64;
        Ok(())
    }
}

/// Wraps a sink so lines come out no faster than their arrival time on the
/// wall clock (event time `first` is now), and stops with an `Interrupted`
/// error once `stop` says so.
pub struct Paced<S, F> {
    inner: S,
    stop: F,
    pace: Option<(std::time::Instant, Timestamp)>,
    /// Lines passed through so far.
    pub lines: u64,
}

impl<S: Sink, F: Fn() -> bool> Paced<S, F> {
    /// Paces `inner` in real time from event time `first` when `realtime`.
    pub fn new(inner: S, realtime: bool, first: Timestamp, stop: F) -> Self {
        Paced {
            inner,
            stop,
            pace: realtime.then(|| (std::time::Instant::now(), first)),
            lines: 0,
        }
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Sink, F: Fn() -> bool> Sink for Paced<S, F> {
    fn emit(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        if (self.stop)() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
        }
        if let Some((wall, first)) = self.pace {
            let due = std::time::Duration::from_millis((arrival.0 - first.0).max(0) as u64);
            if let Some(wait) = due.checked_sub(wall.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        self.lines += 1;
        self.inner.emit(kind, arrival, line)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
}
