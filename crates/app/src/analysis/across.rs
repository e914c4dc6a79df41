//! What analysis remembers across the chunks and files of an import: the
//! keys seen (repeated keys, see `keys`), flagged groups (one next of kin per case), the
//! records earlier files define (references to them), and the amounts a
//! type's warnings add up per referenced record.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use passare_imports_domain::catalog::{self, ImportTypeDef, RefTarget, ReferenceDef, RowCheck};
use passare_imports_domain::chunk::{ParsedChunk, RefHit, ReferenceLookup};
use passare_imports_domain::{FindingKind, excerpt};
use passare_imports_store::PgConnection;
use passare_imports_store::entities::import_files;
use passare_imports_store::scratch;

use super::keys::FirstSeen;
use crate::error::ApiError;

/// Flagged group → (file index, row, key), per type and flag column.
pub(super) type Flagged =
    HashMap<(&'static str, &'static str), HashMap<String, (usize, u64, String)>>;

fn key_hash(parts: &[String]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// Columns of `type_key`'s records that references to it read (their
/// `agrees` columns and the totals of `sum_within` warnings).
fn record_columns(type_key: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for t in catalog::CATALOG {
        for r in t.references {
            if matches!(r.target, RefTarget::Records { type_key: k } if k == type_key) {
                for (_, theirs) in r.agrees {
                    if !out.contains(theirs) {
                        out.push(*theirs);
                    }
                }
                if let Some(s) = t.sum_within
                    && s.reference == r.column
                    && !out.contains(&s.total)
                {
                    out.push(s.total);
                }
            }
        }
    }
    out
}

/// Values of a remembered record's `record_columns`.
type Values = Vec<Option<String>>;

/// Records of earlier files of the import, for the types other types refer
/// to: the first `budget` in memory, the rest in the analysis's scratch
/// table in PostgreSQL, fetched a chunk at a time for the references the
/// chunk holds ([`EarlierRecords::fetch`]). Both give the same answer.
pub(super) struct EarlierRecords {
    budget: usize,
    held: usize,
    /// Records in the scratch table (it exists once one is).
    spilled: u64,
    /// type key → record key → values of its `record_columns`.
    records: HashMap<&'static str, HashMap<String, Values>>,
    /// Spilled records fetched for the chunk being checked.
    fetched: HashMap<&'static str, HashMap<String, Values>>,
    /// type key → its `record_columns`, computed once per type.
    columns: HashMap<&'static str, Vec<&'static str>>,
}

impl EarlierRecords {
    pub(super) fn new(budget: usize) -> Self {
        Self {
            budget,
            held: 0,
            spilled: 0,
            records: HashMap::new(),
            fetched: HashMap::new(),
            columns: HashMap::new(),
        }
    }

    /// Records held in memory.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Records in the scratch table.
    pub(super) fn spilled(&self) -> u64 {
        self.spilled
    }

    fn wants(type_key: &str) -> bool {
        catalog::CATALOG.iter().any(|t| {
            t.references
                .iter()
                .any(|r| matches!(r.target, RefTarget::Records { type_key: k } if k == type_key))
        })
    }

    /// Remembers the valid records of a chunk whose type others refer to
    /// (the first values seen for a key stay).
    pub(super) async fn remember(
        &mut self,
        conn: &mut PgConnection,
        def: &'static ImportTypeDef,
        parsed: &ParsedChunk,
    ) -> Result<(), ApiError> {
        if !Self::wants(def.key) {
            return Ok(());
        }
        let columns = self
            .columns
            .entry(def.key)
            .or_insert_with(|| record_columns(def.key));
        let map = self.records.entry(def.key).or_default();
        let mut spill: Vec<(String, Values)> = Vec::new();
        for i in 0..parsed.batch.num_rows() {
            if !parsed.valid[i] {
                continue;
            }
            let Some(key) = parsed.key(def, i) else {
                continue;
            };
            let key = key.join("+");
            if map.contains_key(&key) {
                continue;
            }
            let values = columns.iter().map(|c| parsed.text(c, i)).collect();
            if self.held < self.budget {
                map.insert(key, values);
                self.held += 1;
            } else if !spill.iter().any(|(k, _)| *k == key) {
                spill.push((key, values));
            }
        }
        if !spill.is_empty() {
            if self.spilled == 0 {
                scratch::create_records(conn).await?;
            }
            scratch::insert_records(conn, def.key, &spill).await?;
            self.spilled += spill.len() as u64;
        }
        Ok(())
    }

    /// Fetches from the scratch table the remembered records a chunk of
    /// `def` refers to (those not in memory), replacing the last chunk's.
    pub(super) async fn fetch(
        &mut self,
        conn: &mut PgConnection,
        def: &ImportTypeDef,
        parsed: &ParsedChunk,
    ) -> Result<(), ApiError> {
        self.fetched.clear();
        if self.spilled == 0 {
            return Ok(());
        }
        for (r, values) in def.references.iter().zip(parsed.reference_values(def)) {
            if let RefTarget::Records { type_key } = r.target {
                self.fetch_keys(conn, type_key, values).await?;
            }
        }
        Ok(())
    }

    /// Fetches the remembered records of `type_key` among `keys` that are
    /// not in memory, adding them to those fetched.
    pub(super) async fn fetch_keys(
        &mut self,
        conn: &mut PgConnection,
        type_key: &'static str,
        keys: Vec<String>,
    ) -> Result<(), ApiError> {
        if self.spilled == 0 {
            return Ok(());
        }
        let memory = self.records.get(type_key);
        let missing: Vec<String> = keys
            .into_iter()
            .filter(|k| !memory.is_some_and(|m| m.contains_key(k)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let found = scratch::find_records(conn, type_key, &missing).await?;
        self.fetched.entry(type_key).or_default().extend(found);
        Ok(())
    }

    /// Drops the scratch table, if records were spilled to it.
    pub(super) async fn release(&self, conn: &mut PgConnection) -> Result<(), ApiError> {
        if self.spilled > 0 {
            scratch::drop_records(conn).await?;
        }
        Ok(())
    }

    fn values(&self, type_key: &str, key: &str) -> Option<&Values> {
        self.records
            .get(type_key)
            .and_then(|m| m.get(key))
            .or_else(|| self.fetched.get(type_key).and_then(|m| m.get(key)))
    }

    pub(super) fn column(&self, type_key: &str, key: &str, column: &str) -> Option<String> {
        let i = self
            .columns
            .get(type_key)?
            .iter()
            .position(|c| *c == column)?;
        self.values(type_key, key)?.get(i).cloned().flatten()
    }
}

impl ReferenceLookup for EarlierRecords {
    fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit> {
        let RefTarget::Records { type_key } = r.target else {
            return None;
        };
        self.values(type_key, value)?;
        Some(RefHit {
            id: None,
            agrees: r
                .agrees
                .iter()
                .map(|(_, theirs)| self.column(type_key, value, theirs))
                .collect(),
        })
    }
}

/// Running totals of a `sum_within` warning: per referenced record, the sum
/// of this import's amounts and the last row that added to it.
#[derive(Default)]
pub(super) struct Sums {
    pub by_record: HashMap<String, (i128, u64, usize)>,
    /// (reference, key) of the import's rows, so stored rows that the import
    /// replaces are not counted twice.
    pub keys: Vec<(String, String)>,
}

/// The chunk's valid rows that have a key: (row index, key hash, row number).
pub(super) fn keyed_rows(
    def: &'static ImportTypeDef,
    parsed: &ParsedChunk,
) -> Vec<(usize, u64, u64)> {
    (0..parsed.batch.num_rows())
        .filter(|i| parsed.valid[*i])
        .filter_map(|i| {
            let key = parsed.key(def, i)?;
            Some((i, key_hash(&key), parsed.row_number(i)))
        })
        .collect()
}

/// Fails the rows whose key was seen before (`first`, per row of `rows`):
/// in the same file, or in an earlier file of the import.
pub(super) fn fail_repeats(
    def: &'static ImportTypeDef,
    fi: usize,
    files: &[import_files::Model],
    parsed: &mut ParsedChunk,
    rows: &[(usize, u64, u64)],
    first: &[Option<FirstSeen>],
) {
    for ((i, _, _), seen) in rows.iter().zip(first) {
        let (Some((other, first)), Some(key)) = (seen, parsed.key(def, *i)) else {
            continue;
        };
        let (kind, reason) = if *other == fi {
            (
                FindingKind::DuplicateInFile,
                format!("duplicate key: the same key is already at row {first}"),
            )
        } else {
            (
                FindingKind::DuplicateInRequest,
                format!(
                    "duplicate key: the same key is at row {first} of {}",
                    files
                        .get(*other)
                        .map_or("an earlier file", |f| f.file_name.as_str())
                ),
            )
        };
        let column = def.key_columns.join("+");
        parsed.fail(*i, kind, &column, excerpt(&key.join("+")), reason);
    }
}

/// Flags across the chunks and files of the import: a group flagged by two
/// records.
pub(super) fn across_flags(
    def: &'static ImportTypeDef,
    fi: usize,
    files: &[import_files::Model],
    parsed: &mut ParsedChunk,
    flagged: &mut Flagged,
) {
    for check in def.row_checks {
        let RowCheck::OneFlaggedPer { group, flag } = *check else {
            continue;
        };
        let groups = flagged.entry((def.key, flag)).or_default();
        for i in 0..parsed.batch.num_rows() {
            if !parsed.valid[i] || parsed.text(flag, i).as_deref() != Some("true") {
                continue;
            }
            let (Some(g), Some(key)) = (parsed.text(group, i), parsed.key(def, i)) else {
                continue;
            };
            let key = key.join("+");
            match groups.get(&g) {
                Some((other, row, first_key)) if *first_key != key => {
                    let reason = format!(
                        "{group} {g:?} already has {flag} at row {row}{}",
                        if *other == fi {
                            String::new()
                        } else {
                            format!(
                                " of {}",
                                files.get(*other).map_or("", |f| f.file_name.as_str())
                            )
                        }
                    );
                    parsed.fail(i, FindingKind::Constraint, flag, "true".into(), reason);
                }
                Some(_) => {}
                None => {
                    groups.insert(g, (fi, parsed.row_number(i), key));
                }
            }
        }
    }
}

pub(super) fn cents(text: &str) -> Option<i128> {
    passare_imports_domain::values::parse_money(text)
        .ok()
        .map(i128::from)
}
impl Sums {
    /// Adds a chunk's valid rows to the sums of the records they refer to.
    pub(super) fn add(&mut self, def: &ImportTypeDef, fi: usize, parsed: &ParsedChunk) {
        let Some(s) = def.sum_within else {
            return;
        };
        for i in 0..parsed.batch.num_rows() {
            let (true, Some(reference), Some(amount), Some(key)) = (
                parsed.valid[i],
                parsed.text(s.reference, i),
                parsed.text(s.amount, i).and_then(|a| cents(&a)),
                parsed.key(def, i),
            ) else {
                continue;
            };
            let entry = self.by_record.entry(reference.clone()).or_default();
            entry.0 += amount;
            entry.1 = parsed.row_number(i);
            entry.2 = fi;
            self.keys.push((reference, key.join("+")));
        }
    }
}
