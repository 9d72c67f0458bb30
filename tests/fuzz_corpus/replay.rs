//! Every checked-in seed (`fuzz/corpus/<target>/`) and crash reproducer
//! (`fuzz/regressions/<target>/`) through its target's check, on stable.

use std::fs;
use std::path::{Path, PathBuf};

use tether_core::fuzzing;

/// The files of one folder of the fuzz directory, sorted; none if the
/// folder does not exist.
fn files(folder: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(folder)
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable folder").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Replays `target`'s seeds and reproducers through `check`; returns how
/// many seeds there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let seeds = files("corpus", target);
    for path in seeds.iter().chain(&files("regressions", target)) {
        let data = fs::read(path).expect("a readable file");
        eprintln!("replaying {}", path.display());
        check(&data);
    }
    seeds.len()
}

#[test]
fn envelope_corpus_replays() {
    assert!(replay("envelope", fuzzing::envelope::check) > 0);
}

#[test]
fn http_upgrade_corpus_replays() {
    assert!(replay("http_upgrade", fuzzing::http_upgrade::check) > 0);
}

#[test]
fn server_bytes_corpus_replays() {
    assert!(replay("server_bytes", fuzzing::server_bytes::check) > 0);
}

#[test]
fn deflate_bytes_corpus_replays() {
    assert!(replay("deflate_bytes", fuzzing::deflate_bytes::check) > 0);
}

#[test]
fn server_ops_corpus_replays() {
    assert!(replay("server_ops", fuzzing::server_ops::check) > 0);
}

#[test]
fn client_ops_corpus_replays() {
    assert!(replay("client_ops", fuzzing::client_ops::check) > 0);
}
