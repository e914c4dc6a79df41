//! Analysis (the dry run): every file of a draft import is read, parsed and
//! checked chunk by chunk exactly as the workers will load it, against what
//! the organization has stored and against the earlier files of the same
//! import, without writing a target row. Memory stays bounded by one chunk
//! plus a hash per key of the import (and the keys of types other files
//! refer to).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use chrono::Utc;
use passare_imports_domain::analysis::{AnalysisReport, FileAnalysis, Finding, FindingSet};
use passare_imports_domain::catalog::{self, ImportTypeDef, RefTarget, ReferenceDef, RowCheck};
use passare_imports_domain::chunk::{
    ChunkLayout, ParsedChunk, RefHit, ReferenceLookup, parse_chunk,
};
use passare_imports_domain::values::format_cents;
use passare_imports_domain::{ChunkRange, FileState, FindingKind, RowProblem, excerpt};
use passare_imports_store::entities::{import_files, imports};
use passare_imports_store::loader::{self, Target};
use passare_imports_store::repo;
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;

use crate::app::App;
use crate::error::ApiError;

/// Identifies the files of an import as analysed: ids, checksums and how
/// they are read. Any added, removed or replaced file changes it.
pub fn fingerprint(files: &[import_files::Model]) -> String {
    let mut sorted: Vec<&import_files::Model> = files.iter().collect();
    sorted.sort_by_key(|f| f.id);
    let mut h = Sha256::new();
    for f in sorted {
        h.update(f.id.as_bytes());
        h.update(f.sha256.as_bytes());
        h.update(f.import_type.as_bytes());
        h.update(f.column_mapping.to_string().as_bytes());
    }
    hex::encode(h.finalize())
}

/// Flagged group → (file index, row, key), per type and flag column.
type Flagged = HashMap<(&'static str, &'static str), HashMap<String, (usize, u64, String)>>;

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

/// Records of earlier files of the import, for the types other types refer to.
#[derive(Default)]
struct EarlierRecords {
    /// type key → record key → values of its `record_columns`.
    records: HashMap<&'static str, HashMap<String, Vec<Option<String>>>>,
    /// type key → its `record_columns`, computed once per type.
    columns: HashMap<&'static str, Vec<&'static str>>,
}

impl EarlierRecords {
    fn wants(type_key: &str) -> bool {
        catalog::CATALOG.iter().any(|t| {
            t.references
                .iter()
                .any(|r| matches!(r.target, RefTarget::Records { type_key: k } if k == type_key))
        })
    }

    fn remember(&mut self, def: &'static ImportTypeDef, parsed: &ParsedChunk) {
        if !Self::wants(def.key) {
            return;
        }
        let columns = self
            .columns
            .entry(def.key)
            .or_insert_with(|| record_columns(def.key));
        let map = self.records.entry(def.key).or_default();
        for i in 0..parsed.batch.num_rows() {
            if !parsed.valid[i] {
                continue;
            }
            if let Some(key) = parsed.key(def, i) {
                let values = columns.iter().map(|c| parsed.text(c, i)).collect();
                map.entry(key.join("+")).or_insert(values);
            }
        }
    }

    fn column(&self, type_key: &str, key: &str, column: &str) -> Option<String> {
        let i = self
            .columns
            .get(type_key)?
            .iter()
            .position(|c| *c == column)?;
        self.records
            .get(type_key)?
            .get(key)?
            .get(i)
            .cloned()
            .flatten()
    }
}

impl ReferenceLookup for EarlierRecords {
    fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit> {
        let RefTarget::Records { type_key } = r.target else {
            return None;
        };
        self.records.get(type_key)?.get(value)?;
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
struct Sums {
    by_record: HashMap<String, (i128, u64, usize)>,
    /// (reference, key) of the import's rows, so stored rows that the import
    /// replaces are not counted twice.
    keys: Vec<(String, String)>,
}

/// Analyses every file of an import and stores the report with the import.
pub async fn analyze(
    app: &App,
    import: &imports::Model,
    by: &passare_imports_store::repo::Requester,
) -> Result<AnalysisReport, ApiError> {
    let began = Instant::now();
    let org = import.organization_id;
    let mut files = repo::import_files(app.db.orm(), import.id).await?;
    let print = fingerprint(&files);
    files.sort_by_key(|f| (f.load_order, f.position));
    let today = Utc::now().date_naive();
    let samples = app.config.analysis_samples;

    // The organization's setup, once per prerequisite, naming every file that needs it.
    let mut org_findings: Vec<Finding> = Vec::new();
    let mut needed: Vec<(&'static str, Vec<String>)> = Vec::new();
    for f in &files {
        let Some(def) = catalog::find(&f.import_type) else {
            continue;
        };
        for missing in repo::missing_prerequisites(app.db.orm(), org, def).await? {
            match needed.iter_mut().find(|(m, _)| *m == missing) {
                Some((_, names)) => names.push(f.file_name.clone()),
                None => needed.push((missing, vec![f.file_name.clone()])),
            }
        }
    }
    for (missing, names) in needed {
        let message = format!(
            "organization {org} {missing}; needed by {}",
            names.join(", ")
        );
        org_findings.push(Finding {
            kind: FindingKind::MissingPrerequisite,
            warning_only: false,
            count: 1,
            message: message.clone(),
            samples: vec![RowProblem {
                row: 0,
                column: String::new(),
                value: String::new(),
                reason: message,
                kind: FindingKind::MissingPrerequisite,
            }],
            files: names,
        });
    }

    let mut earlier = EarlierRecords::default();
    // Key hash → (file index, row) per type, across the whole import.
    let mut seen: HashMap<&'static str, HashMap<u64, (usize, u64)>> = HashMap::new();
    // Flagged group → (file index, row, key) per type and check.
    let mut flagged: Flagged = HashMap::new();
    let mut sums: HashMap<&'static str, Sums> = HashMap::new();
    let mut reports: Vec<FileAnalysis> = Vec::with_capacity(files.len());
    let mut sets: Vec<FindingSet> = Vec::with_capacity(files.len());

    for (fi, file) in files.iter().enumerate() {
        let def = catalog::find(&file.import_type).ok_or_else(|| {
            ApiError::Internal(format!(
                "file {} has unknown type {}",
                file.id, file.import_type
            ))
        })?;
        let mapping = loader::file_mapping(def, file)?;
        let headers: Vec<String> = serde_json::from_value(file.headers.clone()).unwrap_or_default();
        let mut set = FindingSet::new(samples);
        for (header, column) in headers.iter().zip(&mapping) {
            if column.is_none() {
                set.add(
                    RowProblem {
                        row: 0,
                        column: header.clone(),
                        value: String::new(),
                        reason: format!("is not a column of {} and is ignored", def.display_name),
                        kind: FindingKind::UnknownColumn,
                    },
                    true,
                );
            }
        }
        let mut report = FileAnalysis {
            file_id: file.id,
            file_name: file.file_name.clone(),
            import_type: def.key.to_string(),
            rows: file.row_count as u64,
            format: file.format.clone(),
            encoding: file.encoding.clone(),
            delimiter: file.delimiter.clone(),
            sheet_name: file.sheet_name.clone(),
            columns: headers
                .iter()
                .zip(&mapping)
                .map(|(h, c)| (h.clone(), c.unwrap_or_default().to_string()))
                .collect(),
            load_order: file.load_order,
            would_create: 0,
            would_update: 0,
            would_leave_unchanged: 0,
            would_skip_stale: 0,
            rows_failing: 0,
            findings: Vec::new(),
        };
        if file.state == FileState::Invalid.as_str() {
            let problems: Vec<RowProblem> =
                serde_json::from_value(file.problems.clone()).unwrap_or_default();
            for p in problems {
                set.add(p, false);
            }
            reports.push(report);
            sets.push(set);
            continue;
        }
        let plan: Vec<ChunkRange> = serde_json::from_value(file.chunk_plan.clone())
            .map_err(|e| ApiError::Internal(format!("chunk plan of file {}: {e}", file.id)))?;
        let data_key = file
            .data_key
            .clone()
            .unwrap_or_else(|| file.storage_key.clone());
        let delimiter = file.delimiter.bytes().next().unwrap_or(b',');
        let target = Target {
            def,
            organization_id: org,
            import_id: import.id,
            file_id: file.id,
        };
        for range in plan {
            let bytes = app
                .files
                .read_range(&data_key, range.start, range.end)
                .await?;
            let map = mapping.clone();
            let mut parsed = tokio::task::spawn_blocking(move || {
                parse_chunk(
                    &bytes,
                    ChunkLayout {
                        def,
                        mapping: &map,
                        delimiter,
                        first_row: range.first_row,
                        row_numbers: None,
                        today,
                    },
                )
            })
            .await
            .map_err(|e| ApiError::Internal(format!("analysis task: {e}")))?
            .map_err(|e| ApiError::Internal(format!("parsing {}: {e}", file.file_name)))?;
            loader::check_against_stored(&app.db, org, def, &mut parsed, Some(&earlier)).await?;
            across_chunks(def, fi, &files, &mut parsed, &mut seen, &mut flagged);
            if let Some(s) = def.sum_within {
                let sums = sums.entry(def.key).or_default();
                for i in 0..parsed.batch.num_rows() {
                    let (true, Some(reference), Some(amount), Some(key)) = (
                        parsed.valid[i],
                        parsed.text(s.reference, i),
                        parsed.text(s.amount, i).and_then(|a| cents(&a)),
                        parsed.key(def, i),
                    ) else {
                        continue;
                    };
                    let entry = sums.by_record.entry(reference.clone()).or_default();
                    entry.0 += amount;
                    entry.1 = parsed.row_number(i);
                    entry.2 = fi;
                    sums.keys.push((reference, key.join("+")));
                }
            }
            let would = loader::compare_with_stored(&app.db, target, &parsed).await?;
            report.would_create += would.created as u64;
            report.would_update += would.updated as u64;
            report.would_leave_unchanged += would.unchanged as u64;
            report.would_skip_stale += would.stale as u64;
            report.rows_failing += parsed.failed_rows();
            earlier.remember(def, &parsed);
            for p in parsed.problems {
                set.add(p, false);
            }
        }
        reports.push(report);
        sets.push(set);
    }

    for (type_key, s) in &sums {
        let Some(def) = catalog::find(type_key) else {
            continue;
        };
        for (fi, problem) in sums_above_totals(app, org, def, s, &earlier).await? {
            if let Some(set) = sets.get_mut(fi) {
                set.add(problem, true);
            }
        }
    }
    for (report, set) in reports.iter_mut().zip(sets) {
        report.findings = set.finish();
    }

    let report = AnalysisReport {
        analyzed_at: Utc::now(),
        duration_ms: began.elapsed().as_millis() as u64,
        files: reports,
        findings: org_findings,
        fingerprint: print,
    };
    let policy = passare_imports_domain::FailurePolicy::parse(&import.failure_policy)
        .unwrap_or(passare_imports_domain::FailurePolicy::StopOnFirstError);
    let findings: usize =
        report.files.iter().map(|f| f.findings.len()).sum::<usize>() + report.findings.len();
    let summary = format!(
        "{} files, {findings} findings, {}; would create {}, update {}, leave {} unchanged; {} rows failing",
        report.files.len(),
        if report.blocks(policy) {
            "blocking"
        } else {
            "not blocking"
        },
        report.files.iter().map(|f| f.would_create).sum::<u64>(),
        report.files.iter().map(|f| f.would_update).sum::<u64>(),
        report
            .files
            .iter()
            .map(|f| f.would_leave_unchanged)
            .sum::<u64>(),
        report.files.iter().map(|f| f.rows_failing).sum::<u64>(),
    );
    repo::store_analysis(
        app.db.orm(),
        import.id,
        serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?,
        &report.fingerprint,
        by,
        &summary,
    )
    .await?;
    tracing::info!(
        import_id = %import.id, org_id = org, duration_ms = report.duration_ms,
        rows = report.files.iter().map(|f| f.rows).sum::<u64>(),
        blocking = report.blocks(passare_imports_domain::FailurePolicy::StopOnFirstError),
        "import analysed"
    );
    Ok(report)
}

fn cents(text: &str) -> Option<i128> {
    passare_imports_domain::normal::parse_money(text)
        .ok()
        .map(i128::from)
}

/// Duplicate keys and flags across the chunks and files of the import.
fn across_chunks(
    def: &'static ImportTypeDef,
    fi: usize,
    files: &[import_files::Model],
    parsed: &mut ParsedChunk,
    seen: &mut HashMap<&'static str, HashMap<u64, (usize, u64)>>,
    flagged: &mut Flagged,
) {
    let keys = seen.entry(def.key).or_default();
    for i in 0..parsed.batch.num_rows() {
        if !parsed.valid[i] {
            continue;
        }
        let Some(key) = parsed.key(def, i) else {
            continue;
        };
        let row = parsed.row_number(i);
        match keys.get(&key_hash(&key)) {
            Some((other, first)) if *other == fi => parsed.fail(
                i,
                FindingKind::DuplicateInFile,
                &def.key_columns.join("+"),
                excerpt(&key.join("+")),
                format!("duplicate key: the same key is already at row {first}"),
            ),
            Some((other, first)) => parsed.fail(
                i,
                FindingKind::DuplicateInRequest,
                &def.key_columns.join("+"),
                excerpt(&key.join("+")),
                format!(
                    "duplicate key: the same key is at row {first} of {}",
                    files
                        .get(*other)
                        .map_or("an earlier file", |f| f.file_name.as_str())
                ),
            ),
            None => {
                keys.insert(key_hash(&key), (fi, row));
            }
        }
    }
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

/// Referenced records whose amounts (stored ones not replaced by this
/// import, plus this import's) exceed their total: a warning on the last row
/// that added to each.
async fn sums_above_totals(
    app: &App,
    org: i64,
    def: &'static ImportTypeDef,
    sums: &Sums,
    earlier: &EarlierRecords,
) -> Result<Vec<(usize, RowProblem)>, ApiError> {
    let Some(s) = def.sum_within else {
        return Ok(Vec::new());
    };
    let Some(r) = def.references.iter().find(|r| r.column == s.reference) else {
        return Ok(Vec::new());
    };
    let RefTarget::Records { type_key } = r.target else {
        return Ok(Vec::new());
    };
    let Some(referenced) = catalog::find(type_key) else {
        return Ok(Vec::new());
    };
    let records: Vec<String> = sums.by_record.keys().cloned().collect();
    let ref_key = referenced.key_columns.first().copied().unwrap_or_default();
    let own_key: String = def
        .key_columns
        .iter()
        .map(|k| format!("p.{k}"))
        .collect::<Vec<_>>()
        .join(" || '+' || ");
    let (refs, keys): (Vec<String>, Vec<String>) = sums.keys.iter().cloned().unzip();
    // Stored totals, and stored amounts not replaced by a row of this import.
    let sql = format!(
        "SELECT t.{ref_key} AS record, t.{total}::text AS total,
                (SELECT COALESCE(sum(p.{amount}), 0)::text FROM {own} p
                  WHERE p.organization_id = $1 AND p.{reference} = t.{ref_key}
                    AND NOT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS x(r, k)
                                     WHERE x.r = p.{reference} AND x.k = {own_key})) AS stored
           FROM {table} t WHERE t.organization_id = $1 AND t.{ref_key} = ANY($2)",
        total = s.total,
        amount = s.amount,
        reference = s.reference,
        own = def.target_table,
        table = referenced.target_table,
    );
    let stored: Vec<(String, Option<String>, String)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(org)
        .bind(&records)
        .bind(&refs)
        .bind(&keys)
        .fetch_all(app.db.pool())
        .await
        .map_err(passare_imports_store::StoreError::from)?;
    let stored: HashMap<String, (Option<String>, String)> =
        stored.into_iter().map(|(r, t, s)| (r, (t, s))).collect();
    let mut out = Vec::new();
    for (record, (sum, row, fi)) in &sums.by_record {
        let (total, before) = match stored.get(record) {
            Some((total, before)) => (total.clone(), cents(before).unwrap_or(0)),
            None => (earlier.column(type_key, record, s.total), 0),
        };
        let Some(total) = total.as_deref().and_then(cents) else {
            continue;
        };
        let all = before + sum;
        if all > total {
            let show = |c: i128| i64::try_from(c).map(format_cents).unwrap_or_default();
            out.push((
                *fi,
                RowProblem {
                    row: *row,
                    column: s.amount.into(),
                    value: show(all),
                    reason: format!(
                        "{} of {} {record:?} add up to {}, above its {} of {}",
                        def.display_name,
                        r.describes,
                        show(all),
                        s.total,
                        show(total)
                    ),
                    kind: FindingKind::Constraint,
                },
            ));
        }
    }
    Ok(out)
}
