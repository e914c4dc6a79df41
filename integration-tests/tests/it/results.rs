//! Row-level results: an import that completed with errors lists its failed
//! rows with their reasons, hands them back as a file that a spreadsheet can
//! open safely, takes corrections (as that file, edited, or cell by cell) and
//! runs exactly the still-failed rows again as a new attempt, without
//! duplicating a record; every attempt stays on record, every record names
//! the import, file and row that last wrote it, and sensitive values are
//! masked wherever a row error shows them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use passare_imports_cli::client::{self, Client};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;
use tonic_types::StatusExt;

const ORG: i64 = 1042;

/// The columns of the Cases files of these tests.
const HEADER: [&str; 5] = [
    "case_number",
    "deceased_first_name",
    "deceased_last_name",
    "date_of_death",
    "location_name",
];

/// A first name a spreadsheet would run as a formula (it is valid text).
const HYPERLINK: &str = r#"=HYPERLINK("http://x","y")"#;

const CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// One row of a Cases file of these tests, in [`HEADER`] order.
type Case = [String; 5];

/// A valid case `i` (1-based, its row in the file).
fn case(i: usize) -> Case {
    const FIRST: [&str; 5] = ["Mary", "James", "Linda", "Robert", "Ada"];
    const LAST: [&str; 4] = ["Smith", "Jones", "Garcia", "Nguyen"];
    [
        format!("C{i:05}"),
        FIRST[i % FIRST.len()].to_string(),
        LAST[i % LAST.len()].to_string(),
        format!("2020-{:02}-{:02}", i % 12 + 1, i % 28 + 1),
        if i.is_multiple_of(2) {
            "Main Chapel"
        } else {
            "North Chapel"
        }
        .to_string(),
    ]
}

/// Writes records as CSV: a cell holding a comma, a quote or a line break is
/// quoted, its quotes doubled.
fn csv_bytes<R, S>(records: &[R]) -> Vec<u8>
where
    R: AsRef<[S]>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for record in records {
        let cells: Vec<String> = record
            .as_ref()
            .iter()
            .map(|c| {
                let c = c.as_ref();
                if c.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.to_string()
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// A Cases file: [`HEADER`], then the rows.
fn cases_file(rows: &[Case]) -> Vec<u8> {
    let mut records: Vec<Vec<String>> = vec![HEADER.iter().map(|h| h.to_string()).collect()];
    records.extend(rows.iter().map(|r| r.to_vec()));
    csv_bytes(&records)
}

/// Parses RFC 4180 CSV (comma, CRLF or LF line ends, quoted cells with
/// doubled quotes) into records of cells.
fn parse_csv(bytes: &[u8]) -> anyhow::Result<Vec<Vec<String>>> {
    let text = std::str::from_utf8(bytes).context("a result file is UTF-8")?;
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut cell = String::new();
    let (mut quoted, mut at_start, mut dirty) = (false, true, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cell.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cell.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
                dirty = true;
            }
            ',' => {
                record.push(std::mem::take(&mut cell));
                at_start = true;
                dirty = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
                at_start = true;
                dirty = false;
            }
            c => {
                cell.push(c);
                at_start = false;
                dirty = true;
            }
        }
    }
    anyhow::ensure!(!quoted, "a quoted cell is never closed");
    if dirty {
        record.push(cell);
        records.push(record);
    }
    Ok(records)
}

/// A cell as a result file shows it: one that a spreadsheet would run as a
/// formula gets a leading apostrophe.
fn neutralised(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

/// The records of a downloaded result file.
trait Records {
    fn records(&self) -> anyhow::Result<Vec<Vec<String>>>;
}

impl Records for Download {
    fn records(&self) -> anyhow::Result<Vec<Vec<String>>> {
        parse_csv(&self.bytes)
    }
}

/// Downloads a result file and checks how it streamed: only the first
/// message names the file, none carries more than 256 KiB.
async fn download_checked(
    client: &mut Client,
    import_id: &str,
    file_id: &str,
    kind: pb::ResultKind,
) -> anyhow::Result<Download> {
    let out = download(client, import_id, file_id, kind)
        .await
        .map_err(client::describe)?;
    anyhow::ensure!(out.messages > 0, "the download sent no message");
    anyhow::ensure!(
        out.later_names.is_empty(),
        "only the first message names the file: {:?}",
        out.later_names
    );
    anyhow::ensure!(
        out.largest_chunk <= 256 * 1024,
        "a message carries at most 256 KiB, not {}",
        out.largest_chunk
    );
    Ok(out)
}

/// Every row error of an import, all pages; also returns the number of
/// pages.
async fn row_errors(
    client: &mut Client,
    import_id: &str,
    page_size: i32,
    include_retried: bool,
) -> anyhow::Result<(Vec<pb::RowError>, usize)> {
    let request = pb::ListRowErrorsRequest {
        import_id: import_id.into(),
        file_id: String::new(),
        page_size,
        page_token: String::new(),
        include_retried,
    };
    let pages = pages::pages(client, request).await?;
    if page_size > 0 {
        for page in &pages {
            anyhow::ensure!(
                page.items.len() <= page_size as usize,
                "a page of {page_size} holds {} errors",
                page.items.len()
            );
        }
    }
    let count = pages.len();
    Ok((pages.into_iter().flat_map(|p| p.items).collect(), count))
}

/// A row error as compared: (row, column, value, reason, kind, attempt, open).
type ErrorView = (i64, String, String, String, pb::FindingKind, i32, bool);

fn view(e: &pb::RowError) -> ErrorView {
    (
        e.row,
        e.column.clone(),
        e.value.clone(),
        e.reason.clone(),
        pb::FindingKind::try_from(e.kind).unwrap_or(pb::FindingKind::Unspecified),
        e.attempt,
        e.open,
    )
}

fn error_view(
    row: i64,
    column: &str,
    value: &str,
    reason: &str,
    kind: pb::FindingKind,
    attempt: i32,
    open: bool,
) -> ErrorView {
    (
        row,
        column.into(),
        value.into(),
        reason.into(),
        kind,
        attempt,
        open,
    )
}

async fn upload_corrections(
    client: &mut Client,
    import_id: &str,
    file_id: &str,
    content: Vec<u8>,
) -> Result<pb::UploadCorrectionsResponse, tonic::Status> {
    Ok(client
        .upload_corrections(pb::UploadCorrectionsRequest {
            import_id: import_id.into(),
            file_id: file_id.into(),
            content,
        })
        .await?
        .into_inner())
}

async fn retry(
    client: &mut Client,
    import_id: &str,
) -> Result<pb::RetryFailedRowsResponse, tonic::Status> {
    Ok(client
        .retry_failed_rows(pb::RetryFailedRowsRequest {
            import_id: import_id.into(),
        })
        .await?
        .into_inner())
}

async fn record_source(
    client: &mut Client,
    import_type: &str,
    key: &[&str],
) -> Result<pb::GetRecordSourceResponse, tonic::Status> {
    Ok(client
        .get_record_source(pb::GetRecordSourceRequest {
            organization_id: ORG.to_string(),
            import_type: import_type.into(),
            key: key.iter().map(|k| k.to_string()).collect(),
        })
        .await?
        .into_inner())
}

/// Creates an IMPORT_VALID_ROWS draft of one Cases file, analyses and starts
/// it and waits for the end; returns the import as it ended and its file.
async fn import_cases(
    client: &mut Client,
    name: &str,
    rows: &[Case],
) -> anyhow::Result<(pb::Import, pb::ImportFile)> {
    let (id, files) = files::draft_with_files(
        client,
        ORG,
        pb::FailurePolicy::ImportValidRows,
        &[files::NewFile::new(name, "cases", cases_file(rows))],
    )
    .await?;
    let file = files.into_iter().next().context("one file uploaded")?;
    assert_eq!(file.row_count, rows.len() as i64, "{name}");
    let report = files::analyze(client, &id).await?;
    assert!(!report.blocking, "{report:#?}");
    start(client, &id).await.map_err(client::describe)?;
    let done = tokio::time::timeout(Duration::from_secs(240), wait_terminal(client, &id))
        .await
        .context("the import did not end within 240 s")??;
    Ok((done, file))
}

/// Waits (at most 240 s) for an import to end.
async fn finished(client: &mut Client, import_id: &str) -> anyhow::Result<pb::Import> {
    tokio::time::timeout(Duration::from_secs(240), wait_terminal(client, import_id))
        .await
        .context("the import did not end within 240 s")?
}

/// (rows_total, rows_processed, rows_created, rows_updated, rows_failed).
fn counts(p: Option<&pb::Progress>) -> (i64, i64, i64, i64, i64) {
    let p = p.cloned().unwrap_or_default();
    (
        p.rows_total,
        p.rows_processed,
        p.rows_created,
        p.rows_updated,
        p.rows_failed,
    )
}

/// The row problems GetImport shows with the import's files: (row,
/// column, value, reason).
fn problems(import: &pb::Import) -> Vec<(i64, String, String, String)> {
    import
        .files
        .iter()
        .flat_map(|f| &f.problems)
        .map(|p| (p.row, p.column.clone(), p.value.clone(), p.reason.clone()))
        .collect()
}

/// The timeline as (kind, actor id or "" when the service acted).
fn timeline(import: &pb::Import) -> Vec<(String, String)> {
    import
        .timeline
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
            )
        })
        .collect()
}

fn steps(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, a)| (k.to_string(), a.to_string()))
        .collect()
}

/// The locations of the organization, by name.
async fn locations(env: &TestEnv) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, id FROM locations WHERE organization_id = $1")
            .bind(ORG)
            .fetch_all(env.db.pool())
            .await?;
    Ok(rows.into_iter().collect())
}

/// A stored case: its columns in [`HEADER`] order (the location by name),
/// source row, source file and source import.
type StoredRow = (Case, Option<i64>, Option<uuid::Uuid>, Option<uuid::Uuid>);

/// Every case of the organization, by case number.
async fn stored(env: &TestEnv) -> anyhow::Result<BTreeMap<String, StoredRow>> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT c.case_number, c.deceased_first_name, c.deceased_last_name,
                COALESCE(to_char(c.date_of_death, 'YYYY-MM-DD'), '') AS dod,
                COALESCE(l.name, '') AS location, c.source_row, c.source_file_id, c.source_import_id
           FROM cases c LEFT JOIN locations l ON l.id = c.location_id
          WHERE c.organization_id = $1",
    )
    .bind(ORG)
    .fetch_all(env.db.pool())
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let mut values: Case = Default::default();
        for (i, v) in values.iter_mut().enumerate() {
            *v = r.try_get::<String, _>(i)?;
        }
        let key = values[0].clone();
        let row = (
            values,
            r.try_get("source_row")?,
            r.try_get("source_file_id")?,
            r.try_get("source_import_id")?,
        );
        anyhow::ensure!(out.insert(key.clone(), row).is_none(), "{key} twice");
    }
    Ok(out)
}

/// The header of a Cases WRITTEN_ROWS file: `row`, `outcome`, `record_key`,
/// then every stored column.
const WRITTEN_HEADER: [&str; 17] = [
    "row",
    "outcome",
    "record_key",
    "case_number",
    "deceased_first_name",
    "deceased_middle_name",
    "deceased_last_name",
    "suffix",
    "date_of_birth",
    "date_of_death",
    "case_type",
    "case_status",
    "disposition",
    "opened_on",
    "source_updated_at",
    "location_id",
    "director_user_id",
];

/// Checks a Cases WRITTEN_ROWS file: its header, and exactly `expected`
/// (row, case) in row order, each created, keyed by its case number, with
/// its stored values (neutralised) and location id.
fn check_written(
    download: &Download,
    expected: &[(i64, &Case)],
    locations: &BTreeMap<String, i64>,
    outcome: &str,
) -> anyhow::Result<()> {
    let records = download.records()?;
    let (header, records) = records.split_first().context("no header")?;
    assert_eq!(header, &WRITTEN_HEADER.map(String::from));
    assert_eq!(records.len(), expected.len(), "records of the written rows");
    let at = |name: &str| WRITTEN_HEADER.iter().position(|h| *h == name).unwrap_or(0);
    for (record, (row, case)) in records.iter().zip(expected) {
        assert_eq!(record.len(), WRITTEN_HEADER.len(), "{record:?}");
        let location = locations
            .get(&case[4])
            .with_context(|| format!("no location {}", case[4]))?;
        let want: Vec<(&str, String)> = vec![
            ("row", row.to_string()),
            ("outcome", outcome.into()),
            ("record_key", case[0].clone()),
            ("case_number", case[0].clone()),
            ("deceased_first_name", neutralised(&case[1])),
            ("deceased_middle_name", String::new()),
            ("deceased_last_name", neutralised(&case[2])),
            ("date_of_death", case[3].clone()),
            ("date_of_birth", String::new()),
            ("location_id", location.to_string()),
            ("director_user_id", String::new()),
        ];
        for (column, value) in want {
            assert_eq!(
                record[at(column)],
                value,
                "column {column} of written row {row}: {record:?}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rows_are_downloaded_fixed_and_retried_without_duplicates() -> anyhow::Result<()> {
    // A user imports 1,200 cases, sees it completed with 3 failed rows,
    // downloads them with their reasons, fixes them in a spreadsheet, uploads
    // the fix, and retries just those rows. No duplicates appear.
    let env = TestEnv::start(Options {
        chunk_rows: 500,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let locations = locations(&env).await?;
    assert!(
        locations.contains_key("Main Chapel") && locations.contains_key("North Chapel"),
        "{locations:?}"
    );

    let mut rows: Vec<Case> = (1..=1_200).map(case).collect();
    // Row 7 is valid: a formula is text to the service.
    rows[6][1] = HYPERLINK.into();
    // Three rows in three chunks fail, each for its own reason; row 123 also
    // has a first name a spreadsheet would read as a formula.
    rows[122][1] = "-Anne".into();
    rows[122][3] = "2024-02-30".into();
    rows[641][2] = String::new();
    rows[1_104][4] = "Mars Chapel".into();
    let original = rows.clone();

    let (done, file) = import_cases(&mut client, "riverside-cases.csv", &rows).await?;
    let id = done.id.clone();
    assert_eq!(
        state(&done),
        pb::ImportState::CompletedWithErrors,
        "{done:#?}"
    );
    assert_eq!(done.attempt, 1);
    assert_eq!(done.organization_name, "Riverside Funeral Home");
    assert_eq!(
        counts(done.progress.as_ref()),
        (1_200, 1_200, 1_197, 0, 3),
        "(total, processed, created, updated, failed)"
    );
    assert_eq!(
        done.analysis.as_ref().map(|a| a.rows_failing),
        Some(3),
        "the analysis foresaw the three rows"
    );

    // ListRowErrors, two to a page: exactly the three rows, in row order.
    let expected_errors = vec![
        error_view(
            123,
            "date_of_death",
            "2024-02-30",
            "is not a date (expected YYYY-MM-DD or M/D/YYYY)",
            pb::FindingKind::TypeError,
            1,
            true,
        ),
        error_view(
            642,
            "deceased_last_name",
            "",
            "deceased_last_name is required",
            pb::FindingKind::Constraint,
            1,
            true,
        ),
        error_view(
            1_105,
            "location_name",
            "Mars Chapel",
            "no location of the organization matches \"Mars Chapel\"",
            pb::FindingKind::UnresolvedReference,
            1,
            true,
        ),
    ];
    let (errors, pages) = row_errors(&mut client, &id, 2, false).await?;
    assert_eq!(pages, 2, "three errors, two to a page");
    assert_eq!(errors.iter().map(view).collect::<Vec<_>>(), expected_errors);
    for e in &errors {
        assert_eq!(
            (e.file_id.as_str(), e.file_name.as_str()),
            (file.id.as_str(), "riverside-cases.csv")
        );
    }
    let shown: Vec<(i64, String, String, String)> = expected_errors
        .iter()
        .map(|e| (e.0, e.1.clone(), e.2.clone(), e.3.clone()))
        .collect();
    assert_eq!(problems(&done), shown, "GetImport shows the same rows");
    let only_file = client
        .list_row_errors(pb::ListRowErrorsRequest {
            import_id: id.clone(),
            file_id: file.id.clone(),
            page_size: 0,
            page_token: String::new(),
            include_retried: false,
        })
        .await
        .map_err(client::describe)?
        .into_inner();
    assert_eq!(
        only_file.row_errors.iter().map(view).collect::<Vec<_>>(),
        expected_errors
    );
    assert!(only_file.next_page_token.is_empty());
    let unknown = client
        .list_row_errors(pb::ListRowErrorsRequest {
            import_id: id.clone(),
            file_id: uuid::Uuid::new_v4().to_string(),
            page_size: 0,
            page_token: String::new(),
            include_retried: false,
        })
        .await
        .err()
        .context("errors of a file the import does not have")?;
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");

    // FAILED_ROWS: `row`, the file's own headers, `error`; the three rows with
    // their original cells (neutralised) and reasons.
    let failed = download_checked(&mut client, &id, &file.id, pb::ResultKind::FailedRows).await?;
    assert_eq!(failed.file_name, "riverside-cases.failed-rows.csv");
    assert_eq!(failed.content_type, CONTENT_TYPE);
    let failed_records = failed.records()?;
    let mut failed_header = vec!["row".to_string()];
    failed_header.extend(HEADER.iter().map(|h| h.to_string()));
    failed_header.push("error".into());
    let failed_row = |row: usize, cells: &Case, error: &str| -> Vec<String> {
        let mut out = vec![row.to_string()];
        out.extend(cells.iter().map(|c| neutralised(c)));
        out.push(error.into());
        out
    };
    let date_error = "date_of_death: is not a date (expected YYYY-MM-DD or M/D/YYYY)";
    let name_error = "deceased_last_name: deceased_last_name is required";
    let location_error = "location_name: no location of the organization matches \"Mars Chapel\"";
    assert_eq!(
        failed_records,
        vec![
            failed_header.clone(),
            failed_row(123, &original[122], date_error),
            failed_row(642, &original[641], name_error),
            failed_row(1_105, &original[1_104], location_error),
        ]
    );
    assert_eq!(failed_records[1][2], "'-Anne", "neutralised");

    // WRITTEN_ROWS: the 1,197 rows written, created, with their keys; the
    // formula of row 7 neutralised.
    let written = download_checked(&mut client, &id, &file.id, pb::ResultKind::WrittenRows).await?;
    assert_eq!(written.file_name, "riverside-cases.written-rows.csv");
    assert_eq!(written.content_type, CONTENT_TYPE);
    let expected_written: Vec<(i64, &Case)> = original
        .iter()
        .enumerate()
        .map(|(i, c)| (i as i64 + 1, c))
        .filter(|(row, _)| ![123, 642, 1_105].contains(row))
        .collect();
    assert_eq!(expected_written.len(), 1_197);
    check_written(&written, &expected_written, &locations, "created")?;
    let row7 = written
        .records()?
        .into_iter()
        .find(|r| r.first().map(String::as_str) == Some("7"))
        .context("row 7 was written")?;
    assert_eq!(row7[4], format!("'{HYPERLINK}"));

    // The fix, in a spreadsheet: the date of row 123 and the last name of
    // row 642; row 1105 is left out of the file.
    let mut corrected = vec![failed_header.clone()];
    let mut r123 = failed_records[1].clone();
    r123[4] = "2024-02-28".into();
    let mut r642 = failed_records[2].clone();
    r642[3] = "Okafor".into();
    corrected.push(r123);
    corrected.push(r642);
    // Saved as "CSV UTF-8": a byte-order mark and CRLF line ends.
    let mut content = b"\xEF\xBB\xBF".to_vec();
    content.extend(
        String::from_utf8(csv_bytes(&corrected))?
            .replace('\n', "\r\n")
            .into_bytes(),
    );
    let response = upload_corrections(&mut client, &id, &file.id, content)
        .await
        .map_err(client::describe)?;
    assert_eq!(response.rows_corrected, 2);

    // A row that did not fail cannot be edited; nor can a column the file
    // does not have.
    let refused = update_row(
        &mut client,
        &id,
        &file.id,
        7,
        &[("deceased_first_name", "Mary")],
    )
    .await
    .err()
    .context("row 7 did not fail, yet it was edited")?;
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert_eq!(error_reason(&refused), "ROWS_NOT_FAILED", "{refused:?}");
    let violations: Vec<String> = refused
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    assert_eq!(violations, vec!["rows[7]".to_string()]);
    for column in ["favourite_hymn", "suffix"] {
        let refused = update_row(&mut client, &id, &file.id, 1_105, &[(column, "x")])
            .await
            .err()
            .with_context(|| format!("{column} was edited"))?;
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{column}: {refused:?}"
        );
    }
    // The third row, cell by cell.
    let response = update_row(
        &mut client,
        &id,
        &file.id,
        1_105,
        &[("location_name", "Main Chapel")],
    )
    .await
    .map_err(client::describe)?;
    assert_eq!(response.rows_edited, 1);

    // Edits change nothing until the retry: the errors stand, and the
    // failed rows show their edits.
    let (errors, _) = row_errors(&mut client, &id, 0, false).await?;
    assert_eq!(errors.iter().map(view).collect::<Vec<_>>(), expected_errors);
    let mut fixed = original.clone();
    fixed[122][3] = "2024-02-28".into();
    fixed[641][2] = "Okafor".into();
    fixed[1_104][4] = "Main Chapel".into();
    let edited = download_checked(&mut client, &id, &file.id, pb::ResultKind::FailedRows).await?;
    assert_eq!(
        edited.records()?,
        vec![
            failed_header.clone(),
            failed_row(123, &fixed[122], date_error),
            failed_row(642, &fixed[641], name_error),
            failed_row(1_105, &fixed[1_104], location_error),
        ]
    );
    assert_eq!(state(&get(&mut client, &id).await?), state(&done));
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE organization_id = 1042"
        )
        .await?,
        1_197
    );

    // Retry just those rows.
    let retried = retry(&mut client, &id).await.map_err(client::describe)?;
    assert_eq!(retried.rows_retried, 3);
    let import = retried.import.context("the retried import")?;
    assert_eq!(import.attempt, 2);
    assert_ne!(state(&import), pb::ImportState::CompletedWithErrors);
    let done = finished(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:#?}");
    assert_eq!(done.attempt, 2);
    assert_eq!(
        counts(done.progress.as_ref()),
        (1_200, 1_200, 1_200, 0, 0),
        "(total, processed, created, updated, failed)"
    );
    let p = done.progress.unwrap_or_default();
    assert_eq!(p.rows_imported, 1_200);
    assert_eq!(
        (p.chunks_done, p.chunks_total),
        (4, 4),
        "three chunks and a retry chunk"
    );
    assert!(problems(&done).is_empty(), "{:#?}", problems(&done));
    let f = done.files.first().context("the file")?;
    assert_eq!(f.state, pb::FileState::Completed as i32);
    assert_eq!(counts(f.progress.as_ref()), (1_200, 1_200, 1_200, 0, 0));

    // Exactly 1,200 cases, the corrected ones with their corrections, each
    // naming its row of the file.
    assert_eq!(
        count(
            &env.db,
            "SELECT count(DISTINCT case_number) FROM cases WHERE organization_id = 1042"
        )
        .await?,
        1_200
    );
    let cases = stored(&env).await?;
    assert_eq!(cases.len(), 1_200);
    let import_uuid: uuid::Uuid = id.parse()?;
    let file_uuid: uuid::Uuid = file.id.parse()?;
    for (i, want) in fixed.iter().enumerate() {
        let got = cases
            .get(&want[0])
            .with_context(|| format!("{} is missing", want[0]))?;
        assert_eq!(
            got,
            &(
                want.clone(),
                Some(i as i64 + 1),
                Some(file_uuid),
                Some(import_uuid)
            ),
            "row {}",
            i + 1
        );
    }
    assert_eq!(
        cases["C00123"].0[1], "-Anne",
        "the apostrophe was taken off"
    );
    assert_eq!(cases["C00007"].0[1], HYPERLINK, "stored as written");

    // No open error remains; the three of attempt 1 are superseded.
    let (errors, _) = row_errors(&mut client, &id, 0, false).await?;
    assert!(errors.is_empty(), "{errors:#?}");
    let (errors, _) = row_errors(&mut client, &id, 0, true).await?;
    let superseded: Vec<ErrorView> = expected_errors
        .iter()
        .cloned()
        .map(|mut e| {
            e.6 = false;
            e
        })
        .collect();
    assert_eq!(errors.iter().map(view).collect::<Vec<_>>(), superseded);

    // The result files after the retry.
    let failed = download_checked(&mut client, &id, &file.id, pb::ResultKind::FailedRows).await?;
    assert_eq!(failed.records()?, vec![failed_header.clone()]);
    let written = download_checked(&mut client, &id, &file.id, pb::ResultKind::WrittenRows).await?;
    let all: Vec<(i64, &Case)> = fixed
        .iter()
        .enumerate()
        .map(|(i, c)| (i as i64 + 1, c))
        .collect();
    check_written(&written, &all, &locations, "created")?;

    // A retried row's record names its original row.
    let source = record_source(&mut client, "cases", &["C00123"])
        .await
        .map_err(client::describe)?;
    assert_eq!(
        (
            source.import_id.as_str(),
            source.file_id.as_str(),
            source.row
        ),
        (id.as_str(), file.id.as_str(), 123)
    );

    // Nothing is left to retry or edit.
    let refused = retry(&mut client, &id)
        .await
        .err()
        .context("a completed import was retried")?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_reason(&refused), "IMPORT_NOT_RETRYABLE");
    let refused = update_row(
        &mut client,
        &id,
        &file.id,
        123,
        &[("date_of_death", "2024-02-27")],
    )
    .await
    .err()
    .context("a completed import's row was edited")?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_reason(&refused), "IMPORT_NOT_RETRYABLE");

    // The timeline, with who took each step.
    let import = get(&mut client, &id).await?;
    assert_eq!(import.organization_name, "Riverside Funeral Home");
    assert_eq!(
        timeline(&import),
        steps(&[
            ("created", ADMIN.id),
            ("file_added", ADMIN.id),
            ("analyzed", ADMIN.id),
            ("queued", ADMIN.id),
            ("started", ""),
            ("completed_with_errors", ""),
            ("rows_edited", ADMIN.id),
            ("rows_edited", ADMIN.id),
            ("retry_queued", ADMIN.id),
            ("completed", ""),
        ])
    );
    let times: Vec<_> = import
        .timeline
        .iter()
        .map(|e| e.time.map(|t| (t.seconds, t.nanos)))
        .collect();
    assert!(times.iter().all(Option::is_some), "every step has a time");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    for e in import.timeline.iter().filter(|e| e.actor.is_some()) {
        let actor = e.actor.clone().unwrap_or_default();
        assert_eq!(
            (actor.name.as_str(), actor.email.as_str()),
            ("User admin-1", "admin-1@passare.com"),
            "{e:?}"
        );
    }
    let retry_step = import
        .timeline
        .iter()
        .find(|e| e.kind == "retry_queued")
        .context("retry_queued")?;
    assert!(retry_step.detail.starts_with("attempt 2"), "{retry_step:?}");
    let at = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
    assert!(
        at(import.end_time) >= at(retry_step.time),
        "the import ended after its retry: {:?} {:?}",
        import.end_time,
        retry_step.time
    );

    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_fails_again_keeps_every_attempt() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 4,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let mut rows: Vec<Case> = (1..=10).map(case).collect();
    rows[5][3] = "2024-13-01".into();
    let (done, file) = import_cases(&mut client, "cases.csv", &rows).await?;
    let id = done.id.clone();
    assert_eq!(state(&done), pb::ImportState::CompletedWithErrors);
    assert_eq!(counts(done.progress.as_ref()), (10, 10, 9, 0, 1));
    let first = error_view(
        6,
        "date_of_death",
        "2024-13-01",
        "is not a date (expected YYYY-MM-DD or M/D/YYYY)",
        pb::FindingKind::TypeError,
        1,
        true,
    );
    let (errors, _) = row_errors(&mut client, &id, 0, false).await?;
    assert_eq!(
        errors.iter().map(view).collect::<Vec<_>>(),
        vec![first.clone()]
    );

    // Fixed wrongly: a date in the future.
    update_row(
        &mut client,
        &id,
        &file.id,
        6,
        &[("date_of_death", "2099-03-01")],
    )
    .await
    .map_err(client::describe)?;
    let retried = retry(&mut client, &id).await.map_err(client::describe)?;
    assert_eq!(retried.rows_retried, 1);
    let done = finished(&mut client, &id).await?;
    assert_eq!(
        state(&done),
        pb::ImportState::CompletedWithErrors,
        "{done:#?}"
    );
    assert_eq!(done.attempt, 2);
    assert_eq!(counts(done.progress.as_ref()), (10, 10, 9, 0, 1));
    let second = error_view(
        6,
        "date_of_death",
        "2099-03-01",
        "date_of_death is in the future",
        pb::FindingKind::Constraint,
        2,
        true,
    );
    let (errors, _) = row_errors(&mut client, &id, 0, false).await?;
    assert_eq!(
        errors.iter().map(view).collect::<Vec<_>>(),
        vec![second.clone()]
    );
    // Checked last, so that the rest of the journey is checked too.
    let shown_after_attempt_2 = problems(&done);
    let mut first_superseded = first.clone();
    first_superseded.6 = false;
    let (errors, _) = row_errors(&mut client, &id, 0, true).await?;
    assert_eq!(
        errors.iter().map(view).collect::<Vec<_>>(),
        vec![first_superseded.clone(), second.clone()]
    );

    // The failed row of attempt 2, as downloaded, carries the edit; it comes
    // back corrected.
    let failed = download_checked(&mut client, &id, &file.id, pb::ResultKind::FailedRows).await?;
    let records = failed.records()?;
    let mut wrong = rows[5].clone();
    wrong[3] = "2099-03-01".into();
    let mut expected = vec!["6".to_string()];
    expected.extend(wrong.iter().cloned());
    expected.push("date_of_death: date_of_death is in the future".into());
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1], expected);
    // Saved by a spreadsheet that separates cells with semicolons.
    let mut fix = records.clone();
    fix[1][4] = "2024-03-01".into();
    let content: String = fix.iter().map(|r| r.join(";") + "\r\n").collect();
    let response = upload_corrections(&mut client, &id, &file.id, content.into_bytes())
        .await
        .map_err(client::describe)?;
    assert_eq!(response.rows_corrected, 1);
    let retried = retry(&mut client, &id).await.map_err(client::describe)?;
    assert_eq!(retried.rows_retried, 1);
    assert_eq!(retried.import.map(|i| i.attempt), Some(3));
    let done = finished(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:#?}");
    assert_eq!(done.attempt, 3);
    assert_eq!(counts(done.progress.as_ref()), (10, 10, 10, 0, 0));
    assert!(problems(&done).is_empty(), "{:#?}", problems(&done));

    let (errors, _) = row_errors(&mut client, &id, 0, false).await?;
    assert!(errors.is_empty(), "{errors:#?}");
    let mut second_superseded = second.clone();
    second_superseded.6 = false;
    let (errors, _) = row_errors(&mut client, &id, 0, true).await?;
    assert_eq!(
        errors.iter().map(view).collect::<Vec<_>>(),
        vec![first_superseded, second_superseded]
    );

    let cases = stored(&env).await?;
    assert_eq!(cases.len(), 10);
    let mut fixed = rows.clone();
    fixed[5][3] = "2024-03-01".into();
    for (i, want) in fixed.iter().enumerate() {
        assert_eq!(
            cases.get(&want[0]).map(|c| (&c.0, c.1)),
            Some((want, Some(i as i64 + 1))),
            "row {}",
            i + 1
        );
    }

    let import = get(&mut client, &id).await?;
    assert_eq!(
        timeline(&import),
        steps(&[
            ("created", ADMIN.id),
            ("file_added", ADMIN.id),
            ("analyzed", ADMIN.id),
            ("queued", ADMIN.id),
            ("started", ""),
            ("completed_with_errors", ""),
            ("rows_edited", ADMIN.id),
            ("retry_queued", ADMIN.id),
            ("completed_with_errors", ""),
            ("rows_edited", ADMIN.id),
            ("retry_queued", ADMIN.id),
            ("completed", ""),
        ])
    );
    let retries: Vec<&str> = import
        .timeline
        .iter()
        .filter(|e| e.kind == "retry_queued")
        .map(|e| e.detail.as_str())
        .collect();
    assert!(
        retries.len() == 2
            && retries[0].starts_with("attempt 2")
            && retries[1].starts_with("attempt 3"),
        "{retries:?}"
    );

    // GetImport showed the still-failed row of attempt 2 with the file, not
    // also the error of attempt 1 that the retry superseded.
    assert_eq!(
        shown_after_attempt_2,
        vec![(
            6,
            "date_of_death".to_string(),
            "2099-03-01".to_string(),
            "date_of_death is in the future".to_string()
        )],
        "ImportFile.problems after attempt 2 shows the row as it failed then, once"
    );

    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_of_a_record_names_its_import_file_and_row() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let march: Vec<Case> = (1..=5).map(case).collect();
    let (first, march_file) = import_cases(&mut client, "cases-march.csv", &march).await?;
    assert_eq!(state(&first), pb::ImportState::Completed);

    let source = record_source(&mut client, "cases", &["C00003"])
        .await
        .map_err(client::describe)?;
    assert_eq!(source.import_id, first.id);
    assert_eq!(source.file_id, march_file.id);
    assert_eq!(source.file_name, "cases-march.csv");
    assert_eq!(source.row, 3);
    let by = source.requested_by.clone().context("requested_by")?;
    assert_eq!(
        (by.id.as_str(), by.name.as_str(), by.email.as_str()),
        ("admin-1", "User admin-1", "admin-1@passare.com")
    );
    assert_eq!(source.import_create_time, first.create_time);
    let first_written = source.record_update_time.context("record_update_time")?;

    // The key has one value (case_number): none, or two, is refused.
    for key in [&[][..], &["C00003", "extra"][..]] {
        let refused = record_source(&mut client, "cases", key)
            .await
            .err()
            .with_context(|| format!("key {key:?} was accepted"))?;
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{key:?}");
    }
    let refused = record_source(&mut client, "cases", &["C99999"])
        .await
        .err()
        .context("an unknown case has a source")?;
    assert_eq!(refused.code(), tonic::Code::NotFound);
    let refused = record_source(&mut client, "urns", &["C00003"])
        .await
        .err()
        .context("an unknown type has records")?;
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    // A second import, by another admin, changes case 3 (its row 2 now) and
    // adds a sixth: the source of case 3 moves to it; case 1 stays.
    let other = User {
        id: "admin-2",
        super_admin: true,
        developer: false,
        org: None,
    };
    let mut other_client = env.client_as(&other).await?;
    let mut c3 = case(3);
    c3[2] = "Whitfield".into();
    let april = vec![case(6), c3.clone()];
    let (second, april_file) = import_cases(&mut other_client, "cases-april.csv", &april).await?;
    assert_eq!(state(&second), pb::ImportState::Completed);
    assert_eq!(counts(second.progress.as_ref()), (2, 2, 1, 1, 0));

    let source = record_source(&mut client, "cases", &["C00003"])
        .await
        .map_err(client::describe)?;
    assert_eq!(
        (
            source.import_id.as_str(),
            source.file_id.as_str(),
            source.file_name.as_str(),
            source.row
        ),
        (
            second.id.as_str(),
            april_file.id.as_str(),
            "cases-april.csv",
            2
        )
    );
    assert_eq!(
        source.requested_by.as_ref().map(|u| u.id.as_str()),
        Some("admin-2")
    );
    assert_eq!(source.import_create_time, second.create_time);
    let second_written = source.record_update_time.context("record_update_time")?;
    assert!(
        (second_written.seconds, second_written.nanos)
            > (first_written.seconds, first_written.nanos),
        "{second_written:?} after {first_written:?}"
    );
    let source = record_source(&mut client, "cases", &["C00001"])
        .await
        .map_err(client::describe)?;
    assert_eq!(
        (source.import_id.as_str(), source.row),
        (first.id.as_str(), 1)
    );
    assert_eq!(stored(&env).await?["C00003"].0, c3);

    // The written rows follow the last writer.
    let locations = locations(&env).await?;
    let written = download_checked(
        &mut client,
        &first.id,
        &march_file.id,
        pb::ResultKind::WrittenRows,
    )
    .await?;
    let still: Vec<(i64, &Case)> = [1usize, 2, 4, 5]
        .iter()
        .map(|r| (*r as i64, &march[r - 1]))
        .collect();
    check_written(&written, &still, &locations, "created")?;
    let written = download_checked(
        &mut client,
        &second.id,
        &april_file.id,
        pb::ResultKind::WrittenRows,
    )
    .await?;
    let records = written.records()?;
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(
        records[1..]
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
            .collect::<Vec<_>>(),
        vec![("1", "created", "C00006"), ("2", "updated", "C00003")]
    );

    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_values_are_masked_in_row_errors() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let cases: Vec<Case> = (1..=3).map(case).collect();
    let (done, _) = import_cases(&mut client, "cases.csv", &cases).await?;
    assert_eq!(state(&done), pb::ImportState::Completed);

    let bytes = "case_number,sex,ssn\n\
                 C00001,female,123-45-6789\n\
                 C00002,male,12-345-67890\n\
                 C00003,male,666-12-3456\n";
    let (id, files) = files::draft_with_files(
        &mut client,
        ORG,
        pb::FailurePolicy::ImportValidRows,
        &[files::NewFile::new(
            "basic-information.csv",
            "basic_information",
            bytes,
        )],
    )
    .await?;
    let file = files.first().context("the file")?;
    let report = files::analyze(&mut client, &id).await?;
    assert!(!report.blocking, "{report:#?}");
    let finding = files::finding(&report, "basic-information.csv", pb::FindingKind::TypeError)
        .context("the SSNs are type errors")?;
    assert_eq!(finding.count, 2);
    let samples: Vec<(i64, &str, &str)> = finding
        .samples
        .iter()
        .map(|s| (s.row, s.column.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(
        samples,
        vec![(2, "ssn", "********7890"), (3, "ssn", "*******3456")],
        "analysis samples are masked"
    );

    start(&mut client, &id).await.map_err(client::describe)?;
    let done = finished(&mut client, &id).await?;
    assert_eq!(
        state(&done),
        pb::ImportState::CompletedWithErrors,
        "{done:#?}"
    );
    assert_eq!(counts(done.progress.as_ref()), (3, 3, 1, 0, 2));

    let (errors, _) = row_errors(&mut client, &id, 0, false).await?;
    assert_eq!(
        errors.iter().map(view).collect::<Vec<_>>(),
        vec![
            error_view(
                2,
                "ssn",
                "********7890",
                "is not an SSN (expected 123-45-6789 or nine digits)",
                pb::FindingKind::TypeError,
                1,
                true,
            ),
            error_view(
                3,
                "ssn",
                "*******3456",
                "is not a valid SSN",
                pb::FindingKind::TypeError,
                1,
                true,
            ),
        ]
    );
    assert!(errors.iter().all(|e| e.file_id == file.id));

    // The first row errors GetImport shows with the file are masked too.
    let import = get(&mut client, &id).await?;
    let problems: Vec<(i64, String, String)> = import
        .files
        .iter()
        .flat_map(|f| &f.problems)
        .map(|p| (p.row, p.column.clone(), p.value.clone()))
        .collect();
    assert_eq!(
        problems,
        vec![
            (2, "ssn".to_string(), "********7890".to_string()),
            (3, "ssn".to_string(), "*******3456".to_string()),
        ]
    );

    // The valid row is stored; the failed rows' reasons name no SSN.
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM case_basic_information WHERE organization_id = 1042"
        )
        .await?,
        1
    );
    let failed = download_checked(&mut client, &id, &file.id, pb::ResultKind::FailedRows).await?;
    let records = failed.records()?;
    assert_eq!(records.len(), 3, "{records:?}");
    for r in &records[1..] {
        let error = r.last().cloned().unwrap_or_default();
        assert!(
            !error.contains("67890") && !error.contains("3456"),
            "{error}"
        );
    }
    // Staff correct the file and send it back: they get the cells whole. A
    // plain user of the organization gets the SSNs masked like anywhere else.
    let ssns = |records: &[Vec<String>]| -> Vec<String> {
        records[1..].iter().map(|r| r[3].clone()).collect()
    };
    assert_eq!(ssns(&records), vec!["12-345-67890", "666-12-3456"]);
    let mut member = env.client_as(&MEMBER).await?;
    let theirs = download_checked(&mut member, &id, &file.id, pb::ResultKind::FailedRows).await?;
    assert_eq!(
        ssns(&theirs.records()?),
        vec!["********7890", "*******3456"]
    );

    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_run_the_failed_rows_once() -> anyhow::Result<()> {
    // A double click (or two admins) on "Retry failed rows": one retry runs,
    // the others are refused, and the rows it runs still load.
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let mut rows: Vec<Case> = (1..=10).map(case).collect();
    rows[3][3] = "2024-02-30".into();
    let (done, file) = import_cases(&mut client, "cases.csv", &rows).await?;
    let id = done.id.clone();
    assert_eq!(state(&done), pb::ImportState::CompletedWithErrors);
    update_row(
        &mut client,
        &id,
        &file.id,
        4,
        &[("date_of_death", "2024-02-28")],
    )
    .await
    .map_err(client::describe)?;

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(env.client().await?);
    }
    let calls = clients.iter_mut().map(|c| {
        let id = id.clone();
        async move { retry(c, &id).await }
    });
    let outcomes = futures::future::join_all(calls).await;
    let mut accepted = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(r) => accepted.push(r),
            Err(refused) => {
                assert!(
                    (refused.code() == tonic::Code::FailedPrecondition
                        && error_reason(&refused) == "IMPORT_NOT_RETRYABLE")
                        || refused.code() == tonic::Code::Aborted,
                    "{refused:?}"
                );
            }
        }
    }
    assert_eq!(accepted.len(), 1, "exactly one retry runs");
    assert_eq!(accepted[0].rows_retried, 1);

    let done = finished(&mut client, &id).await?;
    let (errors, _) = row_errors(&mut client, &id, 0, false).await?;
    assert_eq!(
        state(&done),
        pb::ImportState::Completed,
        "the retried row loads: {errors:#?} {:#?}",
        chunk_failures(&mut client, &id).await?
    );
    assert_eq!(done.attempt, 2);
    assert_eq!(counts(done.progress.as_ref()), (10, 10, 10, 0, 0));
    assert!(errors.is_empty(), "{errors:#?}");
    let cases = stored(&env).await?;
    assert_eq!(cases.len(), 10);
    assert_eq!(cases["C00004"].0[3], "2024-02-28");
    assert_eq!(
        timeline(&get(&mut client, &id).await?)
            .iter()
            .filter(|(kind, _)| kind == "retry_queued")
            .count(),
        1
    );

    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_cells_are_neutralised_in_downloads_and_come_back_exactly() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    // First names a spreadsheet would run, and one that starts with an
    // apostrophe of its own; each row fails on its date.
    let names = [
        "\u{FF1D}SUM(A1:A2)",
        "\u{FF20}cmd",
        "@SUM(1)",
        "+1-1",
        "-2+3",
        "'=kept as typed",
        "O'Brien",
    ];
    let mut rows: Vec<Case> = (1..=names.len() + 1).map(case).collect();
    for (row, name) in rows.iter_mut().zip(names) {
        row[1] = name.to_string();
        row[3] = "2024-13-01".into();
    }
    let (done, file) = import_cases(&mut client, "cases.csv", &rows).await?;
    let id = done.id.clone();
    assert_eq!(state(&done), pb::ImportState::CompletedWithErrors);

    let failed = download_checked(&mut client, &id, &file.id, pb::ResultKind::FailedRows).await?;
    let records = failed.records()?;
    assert_eq!(records.len(), names.len() + 1, "{records:?}");
    let shown: Vec<&str> = records[1..].iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        shown,
        vec![
            "'\u{FF1D}SUM(A1:A2)",
            "'\u{FF20}cmd",
            "'@SUM(1)",
            "'+1-1",
            "'-2+3",
            "''=kept as typed",
            "O'Brien",
        ]
    );
    for record in &records {
        for cell in record {
            assert!(
                !cell.starts_with([
                    '=', '+', '-', '@', '\t', '\r', '\n', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}',
                    '\u{FF20}'
                ]),
                "{cell:?} would run as a formula"
            );
        }
    }

    // Fixed in the downloaded file and sent back as it is.
    let mut fix = records.clone();
    for record in fix.iter_mut().skip(1) {
        record[4] = "2024-03-01".into();
    }
    let response = upload_corrections(&mut client, &id, &file.id, csv_bytes(&fix))
        .await
        .map_err(client::describe)?;
    assert_eq!(response.rows_corrected, names.len() as i32);
    retry(&mut client, &id).await.map_err(client::describe)?;
    let done = finished(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:#?}");

    // Stored exactly as the original file had them: only the apostrophes the
    // service added came off.
    let cases = stored(&env).await?;
    for (row, name) in rows.iter().zip(names) {
        assert_eq!(
            cases.get(&row[0]).map(|c| c.0[1].as_str()),
            Some(name),
            "{}",
            row[0]
        );
    }
    env.finish().await
}
