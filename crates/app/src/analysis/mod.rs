//! Analysis (the dry run): every file of a draft import is read, parsed and
//! checked chunk by chunk exactly as the workers will load it, against what
//! the organization has stored and against the earlier files of the same
//! import, without writing a target row. Memory stays bounded by one chunk
//! plus the keys of the import up to a configured budget (beyond it they go
//! to a scratch table in PostgreSQL, see `keys`), and the keys of types
//! other files refer to. AnalyzeImport queues the analysis as a job that a
//! worker runs (see `jobs`).

mod across;
mod held;
mod keys;
mod sums;

use std::collections::HashMap;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use passare_imports_domain::analysis::{AnalysisReport, FileAnalysis, Finding, FindingSet};
use passare_imports_domain::catalog::{self, ImportTypeDef, normalize_header};
use passare_imports_domain::chunk::{ChunkLayout, ParsedChunk, parse_chunk};
use passare_imports_domain::transform::{AppliedProfile, Bound, RuleEffect};
use passare_imports_domain::{ChunkRange, FindingKind, RowProblem};
use passare_imports_storage::FileStore;
use passare_imports_store::analysis_jobs::{self, AnalysisJob};
use passare_imports_store::entities::{import_files, imports};
use passare_imports_store::load::{self, Merged, Target};
use passare_imports_store::sqlx::Postgres;
use passare_imports_store::sqlx::pool::PoolConnection;
use passare_imports_store::states::FileState;
use passare_imports_store::{Db, PgConnection, Requester, imports as records, organizations};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use self::across::{
    EarlierRecords, FlaggedGroups, Sums, fail_repeats, keyed_rows, referred_records,
};
use self::keys::SeenKeys;
use crate::config::Config;
use crate::error::ApiError;

/// How analyses run, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisSettings {
    /// Sample rows kept per finding.
    pub samples: usize,
    /// Keys kept in memory before they go to PostgreSQL.
    pub memory_keys: usize,
    /// A worker's hold on a job, renewed with every chunk checked.
    pub lease_secs: u64,
    /// Claims of one job (a worker died each time) before it fails.
    pub max_attempts: u32,
}

impl AnalysisSettings {
    pub fn of(config: &Config) -> Self {
        Self {
            samples: config.analysis_samples,
            memory_keys: config.analysis_memory_keys,
            lease_secs: config.analysis_lease_secs,
            max_attempts: config.retry_max_attempts,
        }
    }
}

/// What an analysis reads and writes with.
#[derive(Clone, Copy)]
pub struct Analyser<'a> {
    pub db: &'a Db,
    pub files: &'a dyn FileStore,
    pub settings: AnalysisSettings,
}

/// Records a rule keeps as before/after examples in an analysis.
const RULE_EXAMPLES: usize = 5;

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
        // A new version of the file's profile makes the analysis stale.
        if let Some(profile) = &f.profile {
            h.update(profile.to_string().as_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// Analyses every file of an import and stores the report with the import.
/// Run for `job`, it records its progress with every chunk, and stores the
/// report only while the job is still its own (ABORTED otherwise).
pub async fn analyze(
    ctx: Analyser<'_>,
    import: &imports::Model,
    by: &Requester,
    job: Option<&AnalysisJob>,
) -> Result<AnalysisReport, ApiError> {
    use crate::observability::names;
    let began = Instant::now();
    let analysed = analyze_and_store(ctx, import, by, job).await;
    metrics::histogram!(names::ANALYSIS_SECONDS).record(began.elapsed().as_secs_f64());
    let outcome = if analysed.is_ok() { "done" } else { "failed" };
    metrics::counter!(names::ANALYSES, "outcome" => outcome).increment(1);
    analysed
}

async fn analyze_and_store(
    ctx: Analyser<'_>,
    import: &imports::Model,
    by: &Requester,
    job: Option<&AnalysisJob>,
) -> Result<AnalysisReport, ApiError> {
    let began = Instant::now();
    let mut conn = ctx.db.conn().await?;
    let mut files = passare_imports_store::files::of_import(&mut conn, import.id).await?;
    let print = fingerprint(&files);
    files.sort_by_key(|f| (f.load_order, f.position));
    let findings = prerequisites(&mut conn, import.organization_id, &files).await?;
    let expected = rows_per_type(&files);
    let mut run = Run {
        files: ctx.files,
        import,
        job,
        lease_secs: ctx.settings.lease_secs,
        rows_done: 0,
        today: Utc::now().date_naive(),
        samples: ctx.settings.samples,
        earlier: EarlierRecords::new(
            ctx.settings.memory_keys,
            expected.clone(),
            referred_records(files.iter().filter_map(|f| load::file_type(f).ok())),
        ),
        seen: SeenKeys::new(ctx.settings.memory_keys, expected),
        flagged: FlaggedGroups::new(ctx.settings.memory_keys),
        sums: HashMap::new(),
        budget: ctx.settings.memory_keys,
    };
    let mut beside = spare_connection(ctx.db).await;
    let scanned = run.files(&mut conn, &mut beside, &files).await;
    drop(beside);
    // The scratch tables go whether or not the analysis succeeded.
    let released = release(&mut conn, &run).await;
    // Back to the pool before the report's transaction takes one: an
    // analysis holds one connection (two while its chunks are compared).
    drop(conn);
    let (mut reports, sets) = scanned?;
    released?;
    for (report, set) in reports.iter_mut().zip(sets) {
        report.findings = set.finish();
    }
    let report = AnalysisReport {
        analyzed_at: Utc::now(),
        duration_ms: began.elapsed().as_millis() as u64,
        files: reports,
        findings,
        fingerprint: print,
    };
    let json = serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    let summary = summary(&report, import.failure_policy.stops_on_first_error());
    let mut tx = ctx.db.begin().await?;
    if let Some(job) = job
        && !analysis_jobs::end(&mut tx, job, None).await?
    {
        return Err(superseded());
    }
    records::store_analysis(&mut tx, import.id, json, &report.fingerprint, by, &summary).await?;
    tx.commit()
        .await
        .map_err(passare_imports_store::StoreError::from)?;
    tracing::info!(
        import_id = %import.id, org_id = import.organization_id, duration_ms = report.duration_ms,
        rows = report.files.iter().map(|f| f.rows).sum::<u64>(),
        blocking = report.blocks(true),
        keys_in_memory = run.seen.held(), keys_spilled = run.seen.spilled,
        records_in_memory = run.earlier.held(), records_spilled = run.earlier.spilled(),
        "import analysed"
    );
    Ok(report)
}

/// A second connection for the comparison of chunks with the stored
/// records, when the pool gives one at once: an analysis never waits for
/// (or takes from a chunk write) more than its first connection.
async fn spare_connection(db: &Db) -> Option<PoolConnection<Postgres>> {
    let wait = std::time::Duration::from_millis(200);
    tokio::time::timeout(wait, db.pool().acquire())
        .await
        .ok()?
        .ok()
}

/// Compares a checked chunk with the stored records: what writing it would
/// create, update, leave unchanged or skip as stale.
async fn compare(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
) -> Result<Merged, ApiError> {
    Ok(load::compare_with_stored(conn, target, parsed).await?)
}

/// [`compare`] on a task of its own, which the runtime runs on its other
/// thread: the comparison decodes the stored keys of a chunk while the
/// check of the next one runs, rather than between its steps. Gives the
/// connection back with the result.
async fn compare_apart(
    mut spare: PoolConnection<Postgres>,
    target: Target<'static>,
    parsed: ParsedChunk,
) -> Result<(PoolConnection<Postgres>, Merged), ApiError> {
    let task = async move {
        let would = compare(&mut spare, target, &parsed).await?;
        Ok((spare, would))
    };
    tokio::spawn(task.in_current_span())
        .await
        .map_err(|e| ApiError::Internal(format!("comparison task: {e}")))?
}

/// A stage's result with the milliseconds since `began`.
fn timed<T>(began: Instant, result: T) -> (T, u64) {
    (result, began.elapsed().as_millis() as u64)
}

/// Adds what a chunk would do to its file's report.
fn count(report: &mut FileAnalysis, would: Merged) {
    report.would_create += would.created as u64;
    report.would_update += would.updated as u64;
    report.would_leave_unchanged += would.unchanged as u64;
    report.would_skip_stale += would.stale as u64;
}

/// The job being run was asked for again or claimed by another worker.
fn superseded() -> ApiError {
    ApiError::Aborted("the analysis was asked for again or taken over by another worker".into())
}

/// The timeline's line about an analysis.
fn summary(report: &AnalysisReport, strict: bool) -> String {
    let findings: usize =
        report.files.iter().map(|f| f.findings.len()).sum::<usize>() + report.findings.len();
    let sum = |f: fn(&FileAnalysis) -> u64| report.files.iter().map(f).sum::<u64>();
    format!(
        "{} files, {findings} findings, {}; would create {}, update {}, leave {} unchanged; {} rows failing",
        report.files.len(),
        if report.blocks(strict) {
            "blocking"
        } else {
            "not blocking"
        },
        sum(|f| f.would_create),
        sum(|f| f.would_update),
        sum(|f| f.would_leave_unchanged),
        sum(|f| f.rows_failing),
    )
}

/// The organization's setup, once per missing prerequisite, naming every
/// file that needs it.
async fn prerequisites(
    conn: &mut PgConnection,
    org: i64,
    files: &[import_files::Model],
) -> Result<Vec<Finding>, ApiError> {
    let mut needed: Vec<(&'static str, Vec<String>)> = Vec::new();
    for f in files {
        let Some(def) = catalog::find(&f.import_type) else {
            continue;
        };
        for missing in organizations::missing_prerequisites(conn, org, def).await? {
            match needed.iter_mut().find(|(m, _)| *m == missing) {
                Some((_, names)) => names.push(f.file_name.clone()),
                None => needed.push((missing, vec![f.file_name.clone()])),
            }
        }
    }
    Ok(needed
        .into_iter()
        .map(|(missing, names)| {
            let message = format!(
                "organization {org} {missing}; needed by {}",
                names.join(", ")
            );
            Finding {
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
            }
        })
        .collect())
}

/// The data rows of each import type among the files.
fn rows_per_type(files: &[import_files::Model]) -> HashMap<&'static str, usize> {
    let mut rows = HashMap::new();
    for file in files {
        if let Ok(def) = load::file_type(file) {
            *rows.entry(def.key).or_default() += usize::try_from(file.row_count).unwrap_or(0);
        }
    }
    rows
}

/// A file being analysed, among the import's files in loading order.
struct FileAt<'a> {
    index: usize,
    files: &'a [import_files::Model],
    file: &'a import_files::Model,
    def: &'static ImportTypeDef,
}

/// One analysis in progress: what it remembers across chunks and files.
struct Run<'a> {
    files: &'a dyn FileStore,
    import: &'a imports::Model,
    /// The job run, whose progress is recorded with every chunk.
    job: Option<&'a AnalysisJob>,
    lease_secs: u64,
    rows_done: i64,
    today: NaiveDate,
    samples: usize,
    earlier: EarlierRecords,
    /// Where each key of the import was first seen, per type.
    seen: SeenKeys,
    /// Groups flagged so far, per type and check.
    flagged: FlaggedGroups,
    /// Entries each of the structures above keeps in memory.
    budget: usize,
    sums: HashMap<&'static str, Sums>,
}

/// Drops every scratch table of the analysis, whether or not it succeeded.
async fn release(conn: &mut PgConnection, run: &Run<'_>) -> Result<(), ApiError> {
    let results = [
        run.seen.release(conn).await,
        run.earlier.release(conn).await,
        run.flagged.release(conn).await,
    ];
    for sums in run.sums.values() {
        sums.release(conn).await?;
    }
    results.into_iter().collect()
}

impl Run<'_> {
    /// Analyses the files in loading order, then the import-wide warnings.
    async fn files(
        &mut self,
        conn: &mut PgConnection,
        beside: &mut Option<PoolConnection<Postgres>>,
        files: &[import_files::Model],
    ) -> Result<(Vec<FileAnalysis>, Vec<FindingSet>), ApiError> {
        let mut reports = Vec::with_capacity(files.len());
        let mut sets = Vec::with_capacity(files.len());
        for (fi, file) in files.iter().enumerate() {
            let at = FileAt {
                index: fi,
                files,
                file,
                def: load::file_type(file)?,
            };
            let (report, set) = self.file(conn, beside, at).await?;
            reports.push(report);
            sets.push(set);
        }
        self.warn_sums(conn, &mut sets).await?;
        Ok((reports, sets))
    }

    /// Analyses one file: its header, then each of its chunks.
    async fn file(
        &mut self,
        conn: &mut PgConnection,
        beside: &mut Option<PoolConnection<Postgres>>,
        at: FileAt<'_>,
    ) -> Result<(FileAnalysis, FindingSet), ApiError> {
        let (file, def) = (at.file, at.def);
        let reading = load::FileReading::of(def, file)?;
        let mut set = FindingSet::new(self.samples);
        unread_headers(def, &reading, &mut set);
        let load::FileReading {
            headers,
            profile,
            mapping,
            rules,
            ..
        } = reading;
        if let Some(p) = &profile {
            missing_for_profile(def, &mapping, p, rules.as_ref(), &mut set);
        }
        let mut report = file_report(file, def, &headers, &mapping);
        report.profile = profile.as_ref().map(|p| p.version());
        report.rule_effects = rules
            .as_ref()
            .map(|r| r.program.effects())
            .unwrap_or_default();
        if file.state == FileState::Invalid {
            let problems: Vec<RowProblem> =
                serde_json::from_value(file.problems.clone()).unwrap_or_default();
            for p in problems {
                set.add(p, false);
            }
            return Ok((report, set));
        }
        let plan: Vec<ChunkRange> = serde_json::from_value(file.chunk_plan.clone())
            .map_err(|e| ApiError::Internal(format!("chunk plan of file {}: {e}", file.id)))?;
        let reader = ChunkReader {
            files: self.files,
            today: self.today,
            samples: self.samples.min(RULE_EXAMPLES),
            file,
            def,
            mapping: &mapping,
            rules: rules.as_ref(),
        };
        self.chunks(conn, beside, &at, &reader, plan, (report, set))
            .await
    }

    /// Analyses the chunks of one file in three stages at once: the next
    /// [`PARSE_AHEAD`] chunks are read and parsed (each on a blocking
    /// thread) while chunk N is checked and chunk N-1 compared with the
    /// stored records (on the second connection and a task of its own, when
    /// there is one; otherwise after its check, on the first). The checks
    /// stay one chunk at a time and in order, as they depend on the chunks
    /// before; the comparison only reads.
    async fn chunks(
        &mut self,
        conn: &mut PgConnection,
        beside: &mut Option<PoolConnection<Postgres>>,
        at: &FileAt<'_>,
        reader: &ChunkReader<'_>,
        plan: Vec<ChunkRange>,
        (mut report, mut set): (FileAnalysis, FindingSet),
    ) -> Result<(FileAnalysis, FindingSet), ApiError> {
        let target = Target {
            def: at.def,
            organization_id: self.import.organization_id,
            import_id: self.import.id,
            file_id: at.file.id,
        };
        let mut ranges = plan.into_iter();
        let mut parsing = FuturesOrdered::new();
        parsing.extend(ranges.by_ref().take(PARSE_AHEAD).map(|r| reader.parse(r)));
        let mut next = parsing.next().await.transpose()?;
        let mut checked_before: Option<ParsedChunk> = None;
        while let Some(mut parsed) = next.take() {
            merge_effects(
                &mut report.rule_effects,
                &parsed.rule_effects,
                RULE_EXAMPLES,
            );
            parsing.extend(ranges.next().map(|r| reader.parse(r)));
            let comparing = match (beside.take(), checked_before.take()) {
                (Some(spare), Some(previous)) => Some(compare_apart(spare, target, previous)),
                (spare, _) => {
                    *beside = spare;
                    None
                }
            };
            let began = Instant::now();
            let ((checked, check_ms), (read, parse_ms), (compared, compare_ms)) = tokio::join!(
                async { timed(began, self.check(conn, at, &mut parsed, &mut report).await) },
                async { timed(began, parsing.next().await.transpose()) },
                async {
                    timed(
                        began,
                        match comparing {
                            Some(task) => task.await.map(Some),
                            None => Ok(None),
                        },
                    )
                }
            );
            tracing::debug!(
                import_id = %self.import.id, file_id = %at.file.id,
                rows = parsed.batch.num_rows(), check_ms, parse_next_ms = parse_ms,
                compare_previous_ms = compare_ms,
                "chunk analysed"
            );
            checked?;
            next = read?;
            if let Some((spare, would)) = compared? {
                *beside = Some(spare);
                count(&mut report, would);
            }
            for p in std::mem::take(&mut parsed.problems) {
                set.add(p, false);
            }
            match beside {
                Some(_) => checked_before = Some(parsed),
                None => count(&mut report, compare(conn, target, &parsed).await?),
            }
        }
        if let (Some(beside), Some(last)) = (beside, &checked_before) {
            count(&mut report, compare(beside, target, last).await?);
        }
        Ok((report, set))
    }
}

/// Chunks of a file read and parsed at once during its analysis, ahead of
/// the one being checked: two keep both cores busy when the checks and the
/// comparison leave one idle, and hold two parsed chunks in memory.
const PARSE_AHEAD: usize = 2;

/// Reads and parses the chunks of one file, as a worker would.
struct ChunkReader<'a> {
    files: &'a dyn FileStore,
    today: NaiveDate,
    samples: usize,
    file: &'a import_files::Model,
    def: &'static ImportTypeDef,
    mapping: &'a [Option<&'static str>],
    rules: Option<&'a Bound>,
}

impl ChunkReader<'_> {
    async fn parse(&self, range: ChunkRange) -> Result<ParsedChunk, ApiError> {
        let file = self.file;
        let data_key = file.data_key.as_deref().unwrap_or(&file.storage_key);
        let bytes = self
            .files
            .read_range(data_key, range.start, range.end)
            .await?;
        let (def, map, today, samples) =
            (self.def, self.mapping.to_vec(), self.today, self.samples);
        let rules = self.rules.cloned();
        let delimiter = file.delimiter.bytes().next().unwrap_or(b',');
        tokio::task::spawn_blocking(move || {
            let layout = ChunkLayout {
                def,
                mapping: &map,
                delimiter,
                first_row: range.first_row,
                row_numbers: None,
                today,
                rules: rules.as_ref(),
                rule_samples: samples,
            };
            parse_chunk(&bytes, layout)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("analysis task: {e}")))?
        .map_err(|e| ApiError::Internal(format!("parsing {}: {e}", file.file_name)))
    }
}

impl Run<'_> {
    /// Checks a parsed chunk against what is stored and what earlier chunks
    /// and files hold (what writing it would do is counted by [`compare`]).
    async fn check(
        &mut self,
        conn: &mut PgConnection,
        at: &FileAt<'_>,
        parsed: &mut ParsedChunk,
        report: &mut FileAnalysis,
    ) -> Result<(), ApiError> {
        let (fi, files, def) = (at.index, at.files, at.def);
        let org = self.import.organization_id;
        self.earlier.fetch(conn, def, parsed).await?;
        load::check_against_stored(conn, org, def, parsed, Some(&self.earlier)).await?;
        let rows = keyed_rows(def, parsed, self.seen.hashes());
        let hashes: Vec<(u64, u64)> = rows.iter().map(|(_, h, row)| (*h, *row)).collect();
        let first = self.seen.first_seen(conn, def.key, fi, &hashes).await?;
        fail_repeats(def, fi, files, parsed, &rows, &first);
        self.flagged.check(conn, def, (fi, files), parsed).await?;
        let budget = self.budget;
        let sums = self
            .sums
            .entry(def.key)
            .or_insert_with(|| Sums::new(budget));
        sums.add(conn, def, fi, parsed).await?;
        report.rows_failing += parsed.failed_rows();
        self.earlier.remember(conn, def, parsed).await?;
        self.rows_done += parsed.batch.num_rows() as i64;
        if let Some(job) = self.job
            && !analysis_jobs::progress(conn, job, self.rows_done, self.lease_secs).await?
        {
            return Err(superseded());
        }
        Ok(())
    }

    /// The request-wide warnings of types whose amounts add up per record.
    async fn warn_sums(
        &mut self,
        conn: &mut PgConnection,
        sets: &mut [FindingSet],
    ) -> Result<(), ApiError> {
        for (type_key, s) in &self.sums {
            let Some(def) = catalog::find(type_key) else {
                continue;
            };
            let check = sums::SumCheck {
                org: self.import.organization_id,
                def,
                sums: s,
            };
            let found = sums::sums_above_totals(conn, check, &mut self.earlier).await?;
            for (fi, problem) in found {
                if let Some(set) = sets.get_mut(fi) {
                    set.add(problem, true);
                }
            }
        }
        Ok(())
    }
}

/// The headers whose values the file's reading ignores: neither mapped to a
/// column nor read by a rule of its profile (warnings).
fn unread_headers(def: &ImportTypeDef, reading: &load::FileReading, set: &mut FindingSet) {
    let load::FileReading {
        headers,
        explicit,
        mapping,
        rules,
        ..
    } = reading;
    let read_by_rules = |h: &str| {
        rules.as_ref().is_some_and(|r| {
            let wanted = normalize_header(h);
            r.program
                .source_headers()
                .iter()
                .any(|s| normalize_header(s) == wanted)
        })
    };
    let repeated = def.repeated_columns(headers, explicit);
    for (header, column) in headers.iter().zip(mapping) {
        if column.is_none() && !read_by_rules(header) {
            let reason = match def.column_named(header) {
                // A blank header over values and a column named twice
                // are blocking findings of the scan already.
                _ if header.trim().is_empty() => continue,
                Some(c) if repeated.iter().any(|(r, _)| *r == c.name) => continue,
                Some(c) => format!(
                    "names the column {} of {}, which the column mapping gives to another header; its values are ignored",
                    c.name, def.display_name
                ),
                None => format!("is not a column of {} and is ignored", def.display_name),
            };
            set.add(
                RowProblem {
                    row: 0,
                    column: header.clone(),
                    value: String::new(),
                    reason,
                    kind: FindingKind::UnknownColumn,
                },
                true,
            );
        }
    }
}

/// A file's analysis before its rows are read: what it is and how its
/// headers map.
fn file_report(
    file: &import_files::Model,
    def: &ImportTypeDef,
    headers: &[String],
    mapping: &[Option<&'static str>],
) -> FileAnalysis {
    FileAnalysis {
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
            .zip(mapping)
            .map(|(h, c)| (h.clone(), c.unwrap_or_default().to_string()))
            .collect(),
        load_order: file.load_order,
        would_create: 0,
        would_update: 0,
        would_leave_unchanged: 0,
        would_skip_stale: 0,
        rows_failing: 0,
        findings: Vec::new(),
        profile: None,
        rule_effects: Vec::new(),
    }
}

/// Required columns that neither the header mapping nor a rule of the
/// file's profile provides: the upload checked the header with the version
/// it had, and a newer version may map or fill other columns.
fn missing_for_profile(
    def: &ImportTypeDef,
    mapping: &[Option<&'static str>],
    profile: &AppliedProfile,
    rules: Option<&Bound>,
    set: &mut FindingSet,
) {
    let filled = rules
        .map(|r| r.program.written_columns())
        .unwrap_or_default();
    for missing in def.missing_required(mapping) {
        if !filled.contains(&missing) {
            let reason = format!(
                "required column {missing} is missing from the header and no rule of profile {:?} v{} fills it",
                profile.name, profile.version
            );
            let problem = RowProblem {
                row: 0,
                column: missing.to_string(),
                value: String::new(),
                reason,
                kind: FindingKind::MissingColumn,
            };
            set.add(problem, false);
        }
    }
}

/// Adds a chunk's rule effects to the file's, keeping the first `samples`
/// examples of each rule.
fn merge_effects(into: &mut [RuleEffect], chunk: &[RuleEffect], samples: usize) {
    for (total, part) in into.iter_mut().zip(chunk) {
        total.rows_changed += part.rows_changed;
        let room = samples.saturating_sub(total.examples.len());
        total
            .examples
            .extend(part.examples.iter().take(room).cloned());
    }
}
