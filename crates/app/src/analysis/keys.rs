//! The keys an analysis has seen, for repeated keys across the chunks and
//! files of an import: the first `budget` in memory, the rest in the
//! analysis's scratch table in PostgreSQL, looked up a chunk at a time. Both
//! give the same answer: where each key was first seen.

use std::collections::HashMap;

use passare_imports_store::PgConnection;
use passare_imports_store::scratch::{self, SeenKey};

use crate::error::ApiError;

/// Where a key was first seen: file index and row.
pub(super) type FirstSeen = (usize, u64);

pub(super) struct SeenKeys {
    budget: usize,
    memory: HashMap<&'static str, HashMap<u64, FirstSeen>>,
    held: usize,
    /// Keys in the scratch table (it exists once one is).
    pub(super) spilled: u64,
}

impl SeenKeys {
    pub(super) fn new(budget: usize) -> Self {
        Self {
            budget,
            memory: HashMap::new(),
            held: 0,
            spilled: 0,
        }
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
        let memory = self.memory.entry(type_key).or_default();
        for (i, (hash, _)) in rows.iter().enumerate() {
            if let Some(first) = memory.get(hash) {
                out[i] = Some(*first);
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
            if self.held < self.budget {
                memory.insert(hash, (fi, row));
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
