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
