//! The keys an analysis has seen, for repeated keys across the chunks and
//! files of an import: the first `budget` in memory, the rest in the
//! analysis's scratch table in PostgreSQL, looked up a chunk at a time. Both
//! give the same answer: where each key was first seen. Keys are known by
//! their hash ([`KeyHashes`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};

use passare_imports_store::PgConnection;
use passare_imports_store::scratch::{self, SeenKey};

use crate::error::ApiError;

/// Where a key was first seen: file index and row.
pub(super) type FirstSeen = (usize, u64);

/// Bits of a packed [`FirstSeen`] that hold the row.
const ROW_BITS: u32 = 48;

/// A [`FirstSeen`] in 8 bytes (file index above, row below), when it fits.
fn pack((file, row): FirstSeen) -> Option<u64> {
    let file = u64::try_from(file)
        .ok()
        .filter(|f| *f < 1 << (64 - ROW_BITS))?;
    (row < 1 << ROW_BITS).then_some(file << ROW_BITS | row)
}

fn unpack(packed: u64) -> FirstSeen {
    (
        (packed >> ROW_BITS) as usize,
        packed & ((1 << ROW_BITS) - 1),
    )
}

/// The hashes an analysis gives keys: SipHash-1-3 under keys drawn for the
/// analysis (std's `RandomState`), so a file cannot be built to make two
/// of its keys collide. 64 bits: two different keys of a million share a
/// hash with a probability of about 3·10⁻⁸, and then the analysis (not the
/// load, which compares the keys themselves) reports a repeat that is not.
pub(super) struct KeyHashes(RandomState);

impl KeyHashes {
    pub(super) fn new() -> Self {
        Self(RandomState::new())
    }

    pub(super) fn of(&self, parts: &[impl Hash]) -> u64 {
        self.0.hash_one(parts)
    }
}

pub(super) struct SeenKeys {
    budget: usize,
    /// Type key → key hash → where it was first seen ([`pack`]ed).
    memory: HashMap<&'static str, HashMap<u64, u64>>,
    /// Keys each type is expected to hold at most: its rows in the import,
    /// within the budget; a type's map is made this large at once (no
    /// doubling, no copy of a full map while it grows).
    expected: HashMap<&'static str, usize>,
    held: usize,
    hashes: KeyHashes,
    /// Keys in the scratch table (it exists once one is).
    pub(super) spilled: u64,
}

impl SeenKeys {
    /// `expected`: the rows of each type in the import.
    pub(super) fn new(budget: usize, expected: HashMap<&'static str, usize>) -> Self {
        Self {
            budget,
            memory: HashMap::new(),
            expected,
            held: 0,
            hashes: KeyHashes::new(),
            spilled: 0,
        }
    }

    /// The hashes the keys are known by.
    pub(super) fn hashes(&self) -> &KeyHashes {
        &self.hashes
    }

    /// Keys held in memory.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// For each of a chunk's `(hash, row)` of `type_key` in file `fi`, in
    /// order: where the same key was first seen, or `None` for a first
    /// sighting (which is remembered).
    pub(super) async fn first_seen(
        &mut self,
        conn: &mut PgConnection,
        type_key: &'static str,
        fi: usize,
        rows: &[(u64, u64)],
    ) -> Result<Vec<Option<FirstSeen>>, ApiError> {
        let mut out: Vec<Option<FirstSeen>> = vec![None; rows.len()];
        // Hash → index of its first row in this chunk not found in memory.
        let mut local: HashMap<u64, usize> = HashMap::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let room = self.budget.saturating_sub(self.held);
        let expected = self.expected.get(type_key).copied().unwrap_or(0);
        let memory = self
            .memory
            .entry(type_key)
            .or_insert_with(|| HashMap::with_capacity(expected.min(room)));
        for (i, (hash, _)) in rows.iter().enumerate() {
            if let Some(first) = memory.get(hash) {
                out[i] = Some(unpack(*first));
            } else if let Some(&j) = local.get(hash) {
                repeats.push((i, j));
            } else {
                local.insert(*hash, i);
            }
        }
        if self.spilled > 0 && !local.is_empty() {
            let hashes: Vec<u64> = local.keys().copied().collect();
            for k in scratch::find_keys(conn, type_key, &hashes).await? {
                if let Some(&j) = local.get(&k.hash) {
                    out[j] = Some((k.file_index, k.row));
                }
            }
        }
        for (i, j) in repeats {
            out[i] = out[j].or(Some((fi, rows[j].1)));
        }
        let mut fresh: Vec<usize> = local.into_values().filter(|j| out[*j].is_none()).collect();
        fresh.sort_unstable();
        let mut spill = Vec::new();
        for j in fresh {
            let (hash, row) = rows[j];
            let packed = pack((fi, row)).filter(|_| self.held < self.budget);
            if let Some(packed) = packed {
                memory.insert(hash, packed);
                self.held += 1;
            } else {
                spill.push(SeenKey {
                    hash,
                    file_index: fi,
                    row,
                });
            }
        }
        if !spill.is_empty() {
            if self.spilled == 0 {
                scratch::create_keys(conn).await?;
            }
            scratch::insert_keys(conn, type_key, &spill).await?;
            self.spilled += spill.len() as u64;
        }
        Ok(out)
    }

    /// Drops the scratch table, if keys were spilled to it.
    pub(super) async fn release(&self, conn: &mut PgConnection) -> Result<(), ApiError> {
        if self.spilled > 0 {
            scratch::drop_keys(conn).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_a_key_was_first_seen_packs_into_eight_bytes_when_it_fits() {
        for first in [(0, 0), (3, 17), (65_535, (1 << ROW_BITS) - 1)] {
            assert_eq!(pack(first).map(unpack), Some(first));
        }
        assert_eq!(pack((65_536, 1)), None);
        assert_eq!(pack((1, 1 << ROW_BITS)), None);
    }

    #[test]
    fn equal_keys_hash_alike_and_parts_do_not_run_together() {
        let hashes = KeyHashes::new();
        let key =
            |parts: &[&str]| hashes.of(&parts.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert_eq!(key(&["C1", "2"]), key(&["C1", "2"]));
        assert_ne!(key(&["C1", "2"]), key(&["C12"]));
        assert_ne!(key(&["C1", "2"]), key(&["C", "12"]));
        // Keys drawn for another analysis give other hashes.
        assert_ne!(
            KeyHashes::new().of(&["C1".to_string()]),
            hashes.of(&["C1".to_string()])
        );
    }
}
