//! End-to-end check of `shopflow generate` and `shopflow validate` as a user
//! runs them: the foundation issue's acceptance scenario, on the real binary.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shopflow");
const ARGS: [&str; 10] = [
    "--seed",
    "7",
    "--events",
    "100000",
    "--duplicates",
    "0.01",
    "--late",
    "0.05",
    "--malformed",
    "0.002",
];
const FILES: [&str; 6] = [
    "clicks",
    "carts",
    "purchases",
    "fx_rates",
    "products",
    "users",
];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shopflow-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn generate(dir: &Path) {
    let out = Command::new(BIN)
        .arg("generate")
        .args(ARGS)
        .arg("--out-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn summary(file: &Path) -> Value {
    let out = Command::new(BIN)
        .args(["validate", "--summary"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "validate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn generated_directory_matches_its_manifest_and_is_reproducible() {
    let (a, b) = (scratch("a"), scratch("b"));
    generate(&a);
    generate(&b);
    for name in FILES
        .iter()
        .map(|f| format!("{f}.jsonl"))
        .chain(["manifest.json".into()])
    {
        let (x, y) = (
            std::fs::read(a.join(&name)).unwrap(),
            std::fs::read(b.join(&name)).unwrap(),
        );
        assert!(x == y, "{name} differs between two runs with the same seed");
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(a.join("manifest.json")).unwrap()).unwrap();
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut event_lines = 0;
    for (file, kind) in FILES
        .iter()
        .zip(["click", "cart", "purchase", "fx", "product", "user"])
    {
        let s = summary(&a.join(format!("{file}.jsonl")));
        let lines = s["lines"].as_u64().unwrap();
        assert_eq!(
            lines,
            manifest["lines"][format!("{file}.jsonl")].as_u64().unwrap(),
            "{file}"
        );
        for (reason, n) in s["invalid"].as_object().unwrap() {
            *rejected.entry(reason.clone()).or_default() += n.as_u64().unwrap();
        }
        if ["click", "cart", "purchase"].contains(&kind) {
            event_lines += lines;
            let valid = manifest["valid_events"][kind].as_u64().unwrap()
                + manifest["faults"]["duplicates"][kind].as_u64().unwrap_or(0);
            assert_eq!(
                s["valid"].as_u64().unwrap(),
                valid,
                "{file}: valid lines = events + re-sends"
            );
        } else {
            assert_eq!(
                s["valid"].as_u64().unwrap(),
                lines,
                "{file} must be all valid"
            );
        }
    }
    assert_eq!(event_lines, 100_000);
    let injected: BTreeMap<String, u64> =
        serde_json::from_value(manifest["faults"]["malformed_by_reason"].clone()).unwrap();
    assert_eq!(
        rejected, injected,
        "every injected malformed line is rejected with its reason"
    );
    assert!(injected.values().sum::<u64>() > 100);
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

#[test]
fn bad_arguments_are_explained() {
    let out = Command::new(BIN)
        .args(["generate", "--late", "1.5", "--out-dir", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a fraction between 0 and 1"), "{err}");
    let out = Command::new(BIN)
        .args(["validate", "no-such-kind.jsonl"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kind"));
}
