//! Every input stored under `tests/fuzz-regressions/<target>/` (inputs that
//! once crashed a fuzz target, minimised, and a few seeds) goes through the
//! same function as the fuzz target of that name (see `fuzz_harness`), so a
//! finding stays fixed without running the fuzzer. `docs/fuzzing.md` says
//! how the fuzzers are run and how an input is added here.

mod fuzz_harness;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    files.retain(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"));
    files.sort();
    assert!(!files.is_empty(), "no stored inputs in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Feeds each stored input of `target` to `run`, naming the input that fails.
fn replay(target: &str, run: fn(&[u8])) {
    for (path, bytes) in inputs(target) {
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{} fails again", path.display());
    }
}

/// Every stored input of every target: scans report consistently, chunks
/// parse into located rows, values read back as themselves, workbooks and
/// texts convert or are refused.
#[test]
fn stored_inputs_replay_cleanly() {
    replay("scan", fuzz_harness::scan_target);
    replay("chunk", fuzz_harness::chunk_target);
    replay("values", fuzz_harness::values_target);
    replay("workbook", fuzz_harness::workbook_target);
}
