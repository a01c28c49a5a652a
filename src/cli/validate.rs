//! `shopflow validate`: checks JSON-lines files against the event contract.
//!
//! Prints one JSON verdict per input line (or, with `--summary`, one summary
//! per file) to stdout, so other tools can compare or count them.

use anyhow::{Context, anyhow};
use serde_json::json;
use shopflow_model::EventKind;
use shopflow_model::validate::validate;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Arguments of `validate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Record kind: click, cart, purchase, fx, product or user
    /// [default: from each file's name, like clicks.jsonl].
    #[arg(long)]
    kind: Option<String>,
    /// Print one summary line per file instead of one verdict per line.
    #[arg(long)]
    summary: bool,
    /// JSON-lines files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Runs `validate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for file in &args.files {
        let kind = kind_of(args.kind.as_deref(), file)?;
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut valid = 0u64;
        let mut invalid: BTreeMap<&str, u64> = BTreeMap::new();
        for (n, line) in lines(&bytes).enumerate() {
            let verdict = match validate(kind, line) {
                Ok(_) => {
                    valid += 1;
                    json!({"line": n + 1, "ok": true})
                }
                Err(e) => {
                    *invalid.entry(e.reason.code()).or_default() += 1;
                    json!({"line": n + 1, "ok": false, "reason": e.reason.code(), "field": e.field, "message": e.message})
                }
            };
            if !args.summary {
                writeln!(out, "{verdict}")?;
            }
        }
        if args.summary {
            let total = valid + invalid.values().sum::<u64>();
            let s = json!({"file": file.display().to_string(), "kind": kind.name(), "lines": total, "valid": valid, "invalid": invalid});
            writeln!(out, "{s}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The lines of a file; a final newline does not start another line.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|&b| b == b'\n')
        .filter(move |_| !bytes.is_empty())
}

fn kind_of(given: Option<&str>, file: &Path) -> anyhow::Result<EventKind> {
    let name = match given {
        Some(k) => k.to_string(),
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string(),
    };
    EventKind::from_name(&name).ok_or_else(|| {
        anyhow!("cannot tell the record kind of {} (`{name}`); pass --kind click|cart|purchase|fx|product|user", file.display())
    })
}
