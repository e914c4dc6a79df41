//! Resolving a chunk's references: the records its reference columns name,
//! looked up by the caller (in the database, or among earlier files of the
//! import), then checked and stored as id columns.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::Int64Builder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::{ChunkError, ParsedChunk, cell_str};
use crate::catalog::{ImportTypeDef, RefTarget, ReferenceDef};
use crate::model::{FindingKind, excerpt};

/// The form in which a reference's value is matched: setup names ignore case,
/// record keys match exactly. Borrowed when the value is already in it.
pub fn lookup_form<'a>(r: &ReferenceDef, value: &'a str) -> Cow<'a, str> {
    match r.target {
        RefTarget::Setup { .. }
            if !value.is_ascii() || value.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            Cow::Owned(value.to_lowercase())
        }
        RefTarget::Setup { .. } | RefTarget::Records { .. } => Cow::Borrowed(value),
    }
}

/// The record a reference names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefHit {
    /// Id of a setup record, stored when the reference asks for it.
    pub id: Option<i64>,
    /// The referenced record's values of the reference's `agrees` columns.
    pub agrees: Vec<Option<String>>,
}

/// Finds what a reference's value names.
pub trait ReferenceLookup: Sync {
    /// `value` is in [`lookup_form`].
    fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit>;
}

/// Records found for the values of a chunk's references, by reference column
/// and value in [`lookup_form`].
#[derive(Debug, Clone, Default)]
pub struct ReferenceIndex {
    hits: HashMap<&'static str, HashMap<String, RefHit>>,
}

impl ReferenceIndex {
    pub fn insert(&mut self, r: &ReferenceDef, value: &str, hit: RefHit) {
        self.hits
            .entry(r.column)
            .or_default()
            .entry(lookup_form(r, value).into_owned())
            .or_insert(hit);
    }
}

impl ReferenceLookup for ReferenceIndex {
    fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit> {
        self.hits.get(r.column)?.get(value).cloned()
    }
}

impl ParsedChunk {
    /// Distinct values of each of `def`'s references among the valid rows, in
    /// the form the lookup matches (lower case for setup).
    pub fn reference_values(&self, def: &ImportTypeDef) -> Vec<Vec<String>> {
        def.references
            .iter()
            .map(|r| {
                let Some(column) = self.column(r.column) else {
                    return Vec::new();
                };
                // Distinct as written first (borrowed, no copy per row), then
                // in lookup form, which may merge some.
                let mut written: Vec<Cow<str>> = (0..self.batch.num_rows())
                    .filter(|i| self.valid[*i])
                    .filter_map(|i| cell_str(column, i))
                    .collect();
                written.sort_unstable();
                written.dedup();
                let mut seen: Vec<String> = written
                    .iter()
                    .map(|v| lookup_form(r, v).into_owned())
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                seen
            })
            .collect()
    }

    /// Resolves the references, adds their id columns, and fails rows whose
    /// key repeats an earlier row of the chunk or that flag a second row of
    /// one group (see [`RowCheck::OneFlaggedPer`]).
    pub fn finish(
        &mut self,
        def: &ImportTypeDef,
        lookup: &dyn ReferenceLookup,
    ) -> Result<(), ChunkError> {
        let n = self.batch.num_rows();
        let mut fields: Vec<Field> = self
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns: Vec<ArrayRef> = self.batch.columns().to_vec();
        for r in def.references {
            let mut ids = Int64Builder::with_capacity(n);
            let column = self.column(r.column).cloned();
            let agreeing: Vec<Option<ArrayRef>> = r
                .agrees
                .iter()
                .map(|(mine, _)| self.column(mine).cloned())
                .collect();
            let mut setup_hits: HashMap<&str, Option<RefHit>> = HashMap::new();
            for i in 0..n {
                let Some(value) = column.as_ref().and_then(|c| cell_str(c, i)) else {
                    ids.append_null();
                    continue;
                };
                if !self.valid[i] {
                    ids.append_null();
                    continue;
                }
                let found = match (&value, r.target) {
                    // Setup values repeat from row to row: each distinct
                    // one is put in lookup form and looked up once.
                    (Cow::Borrowed(v), RefTarget::Setup { .. }) => setup_hits
                        .entry(*v)
                        .or_insert_with(|| lookup.find(r, &lookup_form(r, v)))
                        .clone(),
                    _ => lookup.find(r, &lookup_form(r, &value)),
                };
                match found {
                    None => {
                        ids.append_null();
                        self.fail(
                            i,
                            FindingKind::UnresolvedReference,
                            r.column,
                            excerpt(&value),
                            format!("no {} matches {value:?}", r.describes),
                        );
                    }
                    Some(hit) => {
                        match hit.id {
                            Some(id) => ids.append_value(id),
                            None => ids.append_null(),
                        }
                        for (j, (mine, theirs)) in r.agrees.iter().enumerate() {
                            let ours = agreeing[j].as_ref().and_then(|c| cell_str(c, i));
                            let stored = hit.agrees.get(j).and_then(Option::as_deref);
                            if let (Some(ours), Some(stored)) = (ours, stored)
                                && *ours != *stored
                            {
                                self.fail(
                                    i,
                                    FindingKind::Constraint,
                                    mine,
                                    excerpt(&ours),
                                    format!(
                                        "{} {value:?} belongs to {theirs} {stored:?}, not {ours:?}",
                                        r.describes
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            if let Some(name) = r.store_id_as {
                fields.push(Field::new(name, DataType::Int64, true));
                columns.push(Arc::new(ids.finish()));
            }
        }
        self.batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        self.check_duplicate_keys(def);
        self.check_flags(def);
        self.problems.sort_by_key(|p| p.row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_values_match_in_lower_case_and_record_keys_as_written() {
        let setup = ReferenceDef::setup("location_name", "location", ("locations", "name"), "id");
        let records = ReferenceDef::records("case_number", "case", "cases");
        let form = |r: &ReferenceDef, v: &str| match lookup_form(r, v) {
            Cow::Borrowed(b) => (b.to_string(), "borrowed"),
            Cow::Owned(o) => (o, "owned"),
        };
        assert_eq!(
            form(&setup, "main chapel"),
            ("main chapel".into(), "borrowed")
        );
        assert_eq!(form(&setup, "Main Chapel"), ("main chapel".into(), "owned"));
        // Beyond ASCII, lower case is Unicode's, as PostgreSQL's lower() gives.
        assert_eq!(
            form(&setup, "ÉGLISE Saint-Ḡ"),
            ("église saint-ḡ".into(), "owned")
        );
        assert_eq!(form(&setup, "ǅ"), ("ǆ".into(), "owned"));
        assert_eq!(form(&records, "Case-7"), ("Case-7".into(), "borrowed"));
    }
}
