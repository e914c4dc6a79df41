//! What analysis remembers across the chunks and files of an import: the
//! keys seen (repeated keys, see `keys`), flagged groups (one next of kin per case), the
//! records earlier files define (references to them), and the amounts a
//! type's warnings add up per referenced record.

use std::collections::{HashMap, HashSet};

use arrow_array::ArrayRef;
use passare_imports_domain::catalog::{self, ImportTypeDef, RefTarget, ReferenceDef, RowCheck};
use passare_imports_domain::chunk::{ParsedChunk, RefHit, ReferenceLookup, cell_text};
use passare_imports_domain::{FindingKind, excerpt};
use passare_imports_store::PgConnection;
use passare_imports_store::entities::import_files;
use passare_imports_store::scratch::{self, Remembered, SummedRow};

use super::held::{Fingerprints, Held};
use super::keys::{FirstSeen, KeyHashes};
use crate::error::ApiError;

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

/// The text of row `i` of a column the chunk may lack.
fn text(column: Option<&ArrayRef>, i: usize) -> Option<String> {
    column.and_then(|c| cell_text(c, i))
}

/// Records of earlier files of the import, for the types the import's files
/// refer to (a Cases-only import remembers none): the first `budget` in
/// memory (by key fingerprint, [`Held`]), the rest in the analysis's scratch
/// table in PostgreSQL, fetched a chunk at a time for the references the
/// chunk holds ([`EarlierRecords::fetch`]). Both give the same answer.
pub(super) struct EarlierRecords {
    budget: usize,
    held: usize,
    /// Records in the scratch table (it exists once one is).
    spilled: u64,
    prints: Fingerprints,
    /// type key → its records in memory.
    records: HashMap<&'static str, Held>,
    /// Rows of each type in the import: a type's map is made this large
    /// (within the budget) at once.
    expected: HashMap<&'static str, usize>,
    /// Spilled records fetched for the chunk being checked.
    fetched: HashMap<&'static str, HashMap<String, Vec<Option<String>>>>,
    /// type key → its `record_columns`, computed once per type.
    columns: HashMap<&'static str, Vec<&'static str>>,
    /// The types whose records a file of the import refers to.
    referred: HashSet<&'static str>,
}

/// The types whose records files of `defs` refer to (by a reference, and
/// through it by the totals a `sum_within` warning reads).
pub(super) fn referred_records<'a>(
    defs: impl IntoIterator<Item = &'a ImportTypeDef>,
) -> HashSet<&'static str> {
    defs.into_iter()
        .flat_map(|def| def.references)
        .filter_map(|r| match r.target {
            RefTarget::Records { type_key } => Some(type_key),
            _ => None,
        })
        .collect()
}

impl EarlierRecords {
    /// `expected`: the rows of each type in the import; `referred`: the
    /// types whose records its files refer to ([`referred_records`]).
    pub(super) fn new(
        budget: usize,
        expected: HashMap<&'static str, usize>,
        referred: HashSet<&'static str>,
    ) -> Self {
        Self {
            budget,
            held: 0,
            spilled: 0,
            prints: Fingerprints::new(),
            records: HashMap::new(),
            expected,
            fetched: HashMap::new(),
            columns: HashMap::new(),
            referred,
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

    /// Remembers the valid records of a chunk whose type a file of the
    /// import refers to (the first values seen for a key stay); a type no
    /// file refers to costs neither memory nor scratch rows.
    pub(super) async fn remember(
        &mut self,
        conn: &mut PgConnection,
        def: &'static ImportTypeDef,
        parsed: &ParsedChunk,
    ) -> Result<(), ApiError> {
        if !self.referred.contains(def.key) {
            return Ok(());
        }
        let columns = self
            .columns
            .entry(def.key)
            .or_insert_with(|| record_columns(def.key));
        let room = self.budget.saturating_sub(self.held);
        let expected = self.expected.get(def.key).copied().unwrap_or(0);
        let held = self
            .records
            .entry(def.key)
            .or_insert_with(|| Held::with_capacity(columns.len(), expected.min(room)));
        let keys = parsed.keys(def);
        let arrays: Vec<Option<ArrayRef>> =
            columns.iter().map(|c| parsed.column(c).cloned()).collect();
        let mut spill: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for i in 0..parsed.batch.num_rows() {
            if !parsed.valid[i] {
                continue;
            }
            let Some(key) = keys.joined(i) else {
                continue;
            };
            let print = self.prints.of(&key);
            let values =
                || -> Vec<Option<String>> { arrays.iter().map(|a| text(a.as_ref(), i)).collect() };
            if self.held < self.budget {
                if held.hold(print, || values().into_boxed_slice()) {
                    self.held += 1;
                }
            } else if !held.contains(print) {
                spill.entry(key.into_owned()).or_insert_with(values);
            }
        }
        if !spill.is_empty() {
            if self.spilled == 0 {
                scratch::create_remembered(conn, Remembered::Records).await?;
            }
            let spill: Vec<(String, Vec<Option<String>>)> = spill.into_iter().collect();
            scratch::insert_remembered(conn, Remembered::Records, def.key, &spill).await?;
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
        // Nothing to fetch until records were spilled, nor for a type that
        // refers to no records (and the chunk's reference values are not
        // worth collecting for nothing).
        let refers = def
            .references
            .iter()
            .any(|r| matches!(r.target, RefTarget::Records { .. }));
        if self.spilled == 0 || !refers {
            return Ok(());
        }
        for (r, values) in def.references.iter().zip(parsed.reference_values(def)) {
            if let RefTarget::Records { type_key } = r.target {
                self.add_fetched(conn, type_key, values).await?;
            }
        }
        Ok(())
    }

    /// Fetches the remembered records of `type_key` among `keys` (those not
    /// in memory), replacing those fetched before.
    pub(super) async fn fetch_only(
        &mut self,
        conn: &mut PgConnection,
        type_key: &'static str,
        keys: Vec<String>,
    ) -> Result<(), ApiError> {
        self.fetched.clear();
        self.add_fetched(conn, type_key, keys).await
    }

    async fn add_fetched(
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
            .filter(|k| !memory.is_some_and(|m| m.contains(self.prints.of(k))))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let found = scratch::find_remembered(conn, Remembered::Records, type_key, &missing).await?;
        self.fetched.entry(type_key).or_default().extend(found);
        Ok(())
    }

    /// Drops the scratch table, if records were spilled to it.
    pub(super) async fn release(&self, conn: &mut PgConnection) -> Result<(), ApiError> {
        if self.spilled > 0 {
            scratch::drop_remembered(conn, Remembered::Records).await?;
        }
        Ok(())
    }

    fn values(&self, type_key: &str, key: &str) -> Option<&[Option<String>]> {
        self.records
            .get(type_key)
            .and_then(|m| m.get(self.prints.of(key)))
            .or_else(|| {
                self.fetched
                    .get(type_key)
                    .and_then(|m| m.get(key))
                    .map(|v| &v[..])
            })
    }

    pub(super) fn column(&self, type_key: &str, key: &str, column: &str) -> Option<String> {
        self.value_of(type_key, self.values(type_key, key)?, column)
    }

    /// The value of `column` among a record's `values`.
    fn value_of(&self, type_key: &str, values: &[Option<String>], column: &str) -> Option<String> {
        let i = self
            .columns
            .get(type_key)?
            .iter()
            .position(|c| *c == column)?;
        values.get(i).cloned().flatten()
    }
}

impl ReferenceLookup for EarlierRecords {
    fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit> {
        let RefTarget::Records { type_key } = r.target else {
            return None;
        };
        // One lookup (and one fingerprint) of the record per reference.
        let values = self.values(type_key, value)?;
        Some(RefHit {
            id: None,
            agrees: r
                .agrees
                .iter()
                .map(|(_, theirs)| self.value_of(type_key, values, theirs))
                .collect(),
        })
    }
}

/// Running totals of a `sum_within` warning: per referenced record, the sum
/// of this import's amounts and the last row that added to it, with the
/// keys of the rows (so stored rows the import replaces are not counted
/// twice). Rows go to memory until `budget` entries are held; after that,
/// every further row goes to the analysis's scratch table, and the totals
/// are read back a page of records at a time (`sums::sums_above_totals`).
pub(super) struct Sums {
    budget: usize,
    held: usize,
    /// Rows in the scratch table.
    pub spilled: u64,
    pub by_record: HashMap<String, (i128, u64, usize)>,
    /// Reference → keys of the import's rows that add to it.
    pub keys: HashMap<String, Vec<String>>,
}

/// The chunk's valid rows that have a key: (row index, key hash, row number).
pub(super) fn keyed_rows(
    def: &'static ImportTypeDef,
    parsed: &ParsedChunk,
    hashes: &KeyHashes,
) -> Vec<(usize, u64, u64)> {
    let keys = parsed.keys(def);
    (0..parsed.batch.num_rows())
        .filter(|i| parsed.valid[*i])
        .filter_map(|i| {
            let key = keys.parts(i)?;
            Some((i, hashes.of(&key), parsed.row_number(i)))
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
    let keys = parsed.keys(def);
    for ((i, _, _), seen) in rows.iter().zip(first) {
        let (Some((other, first)), Some(key)) = (seen, keys.get(*i)) else {
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

/// Where a group's flag was first seen: file index, row and the flagging
/// record's key.
type FirstFlag = (usize, u64, String);

/// The groups flagged so far (one next of kin per case), per type and flag
/// column: the first `budget` in memory, the rest in the analysis's scratch
/// table, looked up a chunk at a time.
pub(super) struct FlaggedGroups {
    budget: usize,
    held: usize,
    spilled: u64,
    memory: HashMap<(&'static str, &'static str), HashMap<String, FirstFlag>>,
}

impl FlaggedGroups {
    pub(super) fn new(budget: usize) -> Self {
        Self {
            budget,
            held: 0,
            spilled: 0,
            memory: HashMap::new(),
        }
    }

    /// Fails the rows that flag a group another record flagged first, in
    /// this chunk, an earlier chunk or an earlier file of the import.
    pub(super) async fn check(
        &mut self,
        conn: &mut PgConnection,
        def: &'static ImportTypeDef,
        at: (usize, &[import_files::Model]),
        parsed: &mut ParsedChunk,
    ) -> Result<(), ApiError> {
        for check in def.row_checks {
            let RowCheck::OneFlaggedPer { group, flag } = *check else {
                continue;
            };
            self.check_one(conn, def, at, parsed, (group, flag)).await?;
        }
        Ok(())
    }

    async fn check_one(
        &mut self,
        conn: &mut PgConnection,
        def: &'static ImportTypeDef,
        (fi, files): (usize, &[import_files::Model]),
        parsed: &mut ParsedChunk,
        (group, flag): (&'static str, &'static str),
    ) -> Result<(), ApiError> {
        // The chunk's flagged rows: (row index, group, record key).
        let (flags, groups) = (parsed.column(flag), parsed.column(group));
        let keys = parsed.keys(def);
        let rows: Vec<(usize, String, String)> = (0..parsed.batch.num_rows())
            .filter(|i| parsed.valid[*i] && text(flags, *i).as_deref() == Some("true"))
            .filter_map(|i| Some((i, text(groups, i)?, keys.joined(i)?.into_owned())))
            .collect();
        let scope = format!("{}:{flag}", def.key);
        let memory = self.memory.entry((def.key, flag)).or_default();
        let mut known: HashMap<String, FirstFlag> = HashMap::new();
        if self.spilled > 0 {
            let mut missing: Vec<String> = rows
                .iter()
                .filter(|(_, g, _)| !memory.contains_key(g))
                .map(|(_, g, _)| g.clone())
                .collect();
            missing.sort_unstable();
            missing.dedup();
            if !missing.is_empty() {
                known.extend(
                    scratch::find_remembered(conn, Remembered::FlaggedGroups, &scope, &missing)
                        .await?,
                );
            }
        }
        let mut first_here: HashMap<String, FirstFlag> = HashMap::new();
        for (i, g, key) in rows {
            let first = memory
                .get(&g)
                .or_else(|| known.get(&g))
                .or_else(|| first_here.get(&g));
            match first {
                Some((other, row, first_key)) if *first_key != key => {
                    let of = if *other == fi {
                        String::new()
                    } else {
                        format!(
                            " of {}",
                            files.get(*other).map_or("", |f| f.file_name.as_str())
                        )
                    };
                    let reason = format!("{group} {g:?} already has {flag} at row {row}{of}");
                    parsed.fail(i, FindingKind::Constraint, flag, "true".into(), reason);
                }
                Some(_) => {}
                None => {
                    first_here.insert(g, (fi, parsed.row_number(i), key));
                }
            }
        }
        let mut spill = Vec::new();
        for (g, first) in first_here {
            if self.held < self.budget {
                memory.insert(g, first);
                self.held += 1;
            } else {
                spill.push((g, first));
            }
        }
        if !spill.is_empty() {
            if self.spilled == 0 {
                scratch::create_remembered(conn, Remembered::FlaggedGroups).await?;
            }
            scratch::insert_remembered(conn, Remembered::FlaggedGroups, &scope, &spill).await?;
            self.spilled += spill.len() as u64;
        }
        Ok(())
    }

    /// Drops the scratch table, if groups were spilled to it.
    pub(super) async fn release(&self, conn: &mut PgConnection) -> Result<(), ApiError> {
        if self.spilled > 0 {
            scratch::drop_remembered(conn, Remembered::FlaggedGroups).await?;
        }
        Ok(())
    }
}

pub(super) fn cents(text: &str) -> Option<i128> {
    passare_imports_domain::values::parse_money(text)
        .ok()
        .map(i128::from)
}
impl Sums {
    pub(super) fn new(budget: usize) -> Self {
        Self {
            budget,
            held: 0,
            spilled: 0,
            by_record: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Adds a chunk's valid rows to the sums of the records they refer to.
    pub(super) async fn add(
        &mut self,
        conn: &mut PgConnection,
        def: &ImportTypeDef,
        fi: usize,
        parsed: &ParsedChunk,
    ) -> Result<(), ApiError> {
        let Some(s) = def.sum_within else {
            return Ok(());
        };
        let mut spill = Vec::new();
        let (references, amounts) = (parsed.column(s.reference), parsed.column(s.amount));
        let keys = parsed.keys(def);
        for i in 0..parsed.batch.num_rows() {
            let (true, Some(reference), Some(amount), Some(key)) = (
                parsed.valid[i],
                text(references, i),
                text(amounts, i).and_then(|a: String| cents(&a)),
                keys.joined(i),
            ) else {
                continue;
            };
            let (key, row) = (key.into_owned(), parsed.row_number(i));
            if self.spilled > 0 || !spill.is_empty() || self.held >= self.budget {
                spill.push(SummedRow {
                    reference,
                    cents: amount,
                    file_index: fi,
                    row,
                    key,
                });
                continue;
            }
            let keys = self.keys.entry(reference.clone()).or_default();
            keys.push(key);
            let entry = self.by_record.entry(reference).or_insert_with(|| {
                self.held += 1;
                (0, 0, 0)
            });
            entry.0 += amount;
            entry.1 = row;
            entry.2 = fi;
            self.held += 1;
        }
        if !spill.is_empty() {
            if self.spilled == 0 {
                scratch::create_sums(conn).await?;
            }
            scratch::insert_sums(conn, def.key, &spill).await?;
            self.spilled += spill.len() as u64;
        }
        Ok(())
    }

    /// Drops the scratch table, if rows were spilled to it.
    pub(super) async fn release(&self, conn: &mut PgConnection) -> Result<(), ApiError> {
        if self.spilled > 0 {
            scratch::drop_sums(conn).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referred(types: &[&str]) -> Vec<&'static str> {
        let defs = types
            .iter()
            .map(|t| catalog::find(t).expect("an import type"));
        let mut out: Vec<_> = referred_records(defs).into_iter().collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn the_referred_types_are_those_whose_records_a_file_of_the_import_names() {
        // Nothing refers to Cases in a Cases-only import.
        assert!(referred(&["cases"]).is_empty());
        assert_eq!(referred(&["cases", "events"]), ["cases"]);
        assert_eq!(
            referred(&["cases", "contract_information", "payments"]),
            ["cases", "contract_information"]
        );
        // Setup references (bank accounts of checks) are not records.
        assert_eq!(referred(&["checks"]), ["cases"]);
    }
}
