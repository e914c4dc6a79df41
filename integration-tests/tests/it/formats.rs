//! The same Cases data as CSV UTF-8 with a byte-order mark, TSV, UTF-16LE
//! text, Windows-1252 (detected and declared) and an XLSX workbook lands as the
//! same rows; an explicit column mapping reads headers no alias knows.

use anyhow::Context;
use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

const HEADER: [&str; 7] = [
    "case_number",
    "deceased_first_name",
    "deceased_middle_name",
    "deceased_last_name",
    "date_of_birth",
    "date_of_death",
    "case_type",
];

/// The rows as a person types them into a text file: a middle name with a
/// comma, one spanning two lines, one empty; a US-style date; an enum alias.
const TEXT_ROWS: [[&str; 7]; 3] = [
    [
        "F001",
        "José",
        "María, Luisa",
        "García",
        "1940-02-29",
        "2020-03-01",
        "at_need",
    ],
    [
        "F002",
        "Zoë",
        "Anne\nMarie",
        "Brontë",
        "1931-12-31",
        "2021-07-04",
        "Pre Need",
    ],
    [
        "F003",
        "Seán",
        "",
        "O’Brien",
        "1/2/1945",
        "2019-11-30",
        "other",
    ],
];

/// A row of the cases table as the test reads it.
type CaseRow = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn expected_rows() -> Vec<CaseRow> {
    let s = |v: &str| v.to_string();
    vec![
        (
            s("F001"),
            s("José"),
            Some(s("María, Luisa")),
            s("García"),
            Some(s("1940-02-29")),
            Some(s("2020-03-01")),
            Some(s("at_need")),
        ),
        (
            s("F002"),
            s("Zoë"),
            Some(s("Anne\nMarie")),
            s("Brontë"),
            Some(s("1931-12-31")),
            Some(s("2021-07-04")),
            Some(s("pre_need")),
        ),
        (
            s("F003"),
            s("Seán"),
            None,
            s("O’Brien"),
            Some(s("1945-01-02")),
            Some(s("2019-11-30")),
            Some(s("other")),
        ),
    ]
}

/// The rows as delimited text, fields quoted where they must be; records end
/// with `line_end`, line breaks inside a field stay `\n` (as Excel writes them).
fn delimited(delimiter: char, line_end: &str) -> String {
    let field = |f: &str| {
        if f.contains(delimiter) || f.contains('"') || f.contains('\n') {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    let mut out = String::new();
    let lines = std::iter::once(HEADER.to_vec()).chain(TEXT_ROWS.iter().map(|r| r.to_vec()));
    for record in lines {
        let fields: Vec<String> = record.iter().map(|f| field(f)).collect();
        out.push_str(&fields.join(&delimiter.to_string()));
        out.push_str(line_end);
    }
    out
}

/// UTF-16, low byte first, with its byte-order mark (Excel's "Unicode Text").
fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

fn windows_1252(text: &str) -> anyhow::Result<Vec<u8>> {
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    anyhow::ensure!(!unmappable, "the text has characters Windows-1252 lacks");
    Ok(bytes.into_owned())
}

/// A workbook whose first sheet is a dummy and whose second, "Cases", holds
/// the rows with the dates as real Excel dates.
fn workbook() -> anyhow::Result<Vec<u8>> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut workbook = Workbook::new();
    let iso = Format::new().set_num_format("yyyy-mm-dd");
    let us = Format::new().set_num_format("m/d/yyyy");

    let notes = workbook.add_worksheet();
    notes.set_name("Read Me")?;
    notes.write_string(0, 0, "Exported from the old system")?;
    notes.write_string(1, 0, "case_number")?;
    notes.write_string(2, 0, "NOT-A-CASE")?;

    let cases = workbook.add_worksheet();
    cases.set_name("Cases")?;
    for (col, h) in HEADER.iter().enumerate() {
        cases.write_string(0, col as u16, *h)?;
    }
    type Ymd = (u16, u8, u8);
    let dates: [(Ymd, Ymd); 3] = [
        ((1940, 2, 29), (2020, 3, 1)),
        ((1931, 12, 31), (2021, 7, 4)),
        ((1945, 1, 2), (2019, 11, 30)),
    ];
    for (i, (row, (born, died))) in TEXT_ROWS.iter().zip(dates).enumerate() {
        let r = i as u32 + 1;
        for (col, value) in [(0u16, row[0]), (1, row[1]), (2, row[2]), (3, row[3])] {
            if !value.is_empty() {
                cases.write_string(r, col, value)?;
            }
        }
        cases.write_datetime_with_format(
            r,
            4,
            ExcelDateTime::from_ymd(born.0, born.1, born.2)?,
            &iso,
        )?;
        cases.write_datetime_with_format(
            r,
            5,
            ExcelDateTime::from_ymd(died.0, died.1, died.2)?,
            &us,
        )?;
        cases.write_string(r, 6, row[6])?;
    }
    Ok(workbook.save_to_buffer()?)
}

async fn stored_cases(env: &TestEnv, org: i64) -> anyhow::Result<Vec<CaseRow>> {
    Ok(passare_imports_store::sqlx::query_as(
        "SELECT case_number, deceased_first_name, deceased_middle_name, deceased_last_name,
                date_of_birth::text, date_of_death::text, case_type
           FROM cases WHERE organization_id = $1 ORDER BY case_number",
    )
    .bind(org)
    .fetch_all(env.db.pool())
    .await?)
}

/// One format of the same data, and how the service should describe it.
struct Variant {
    org: i64,
    file: NewFile,
    format: pb::FileFormat,
    encoding: &'static str,
    delimiter: &'static str,
    sheet: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_and_encoding_lands_as_the_same_rows() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let crlf = delimited(',', "\r\n");
    let variants = vec![
        Variant {
            org: 1,
            // Excel's "CSV UTF-8": a byte-order mark, CRLF, empty lines at the end.
            file: NewFile::new(
                "cases-bom.csv",
                "cases",
                [
                    b"\xEF\xBB\xBF".as_slice(),
                    crlf.as_bytes(),
                    b"\r\n\r\n,,,,,,\r\n\r\n",
                ]
                .concat(),
            ),
            format: pb::FileFormat::Csv,
            encoding: "utf-8-sig",
            delimiter: ",",
            sheet: "",
        },
        Variant {
            org: 2,
            file: NewFile::new("cases.tsv", "cases", delimited('\t', "\n")),
            format: pb::FileFormat::Tsv,
            encoding: "utf-8",
            delimiter: "\t",
            sheet: "",
        },
        Variant {
            org: 3,
            // Excel's "Unicode Text": UTF-16LE, tab separated.
            file: NewFile::new(
                "cases-utf16.txt",
                "cases",
                utf16le(&delimited('\t', "\r\n")),
            ),
            format: pb::FileFormat::Tsv,
            encoding: "utf-16le",
            delimiter: "\t",
            sheet: "",
        },
        Variant {
            org: 4,
            // Excel's plain "CSV" on Windows, encoding left to detection.
            file: NewFile::new("cases-ansi.csv", "cases", windows_1252(&crlf)?),
            format: pb::FileFormat::Csv,
            encoding: "windows-1252",
            delimiter: ",",
            sheet: "",
        },
        Variant {
            org: 5,
            file: NewFile::new("cases-1252.csv", "cases", windows_1252(&crlf)?)
                .encoding("windows-1252"),
            format: pb::FileFormat::Csv,
            encoding: "windows-1252",
            delimiter: ",",
            sheet: "",
        },
        Variant {
            org: 6,
            file: NewFile::new("cases.xlsx", "cases", workbook()?).sheet("cases"),
            format: pb::FileFormat::Xlsx,
            encoding: "xlsx",
            delimiter: ",",
            sheet: "Cases",
        },
    ];

    let mut started = Vec::new();
    for v in &variants {
        env.organization(v.org).await?;
        let (id, uploaded) = files::draft_with_files(
            &mut client,
            v.org,
            pb::FailurePolicy::ImportValidRows,
            std::slice::from_ref(&v.file),
        )
        .await?;
        let f = &uploaded[0];
        let what = &f.name;
        assert_eq!(f.state, pb::FileState::Ready as i32, "{what}: {f:?}");
        assert_eq!(f.format, v.format as i32, "{what}: {f:?}");
        assert_eq!(f.encoding, v.encoding, "{what}");
        assert_eq!(f.delimiter, v.delimiter, "{what}");
        assert_eq!(f.sheet_name, v.sheet, "{what}");
        assert_eq!(f.row_count, 3, "{what}: {f:?}");
        assert_eq!(f.size_bytes, v.file.bytes.len() as i64, "{what}");
        let columns: Vec<(&str, &str)> = f
            .columns
            .iter()
            .map(|c| (c.header.as_str(), c.column.as_str()))
            .collect();
        assert_eq!(
            columns,
            HEADER.iter().map(|h| (*h, *h)).collect::<Vec<_>>(),
            "{what}"
        );

        let report = files::analyze(&mut client, &id).await?;
        let analysed = files::file_analysis(&report, what)?;
        assert!(analysed.findings.is_empty(), "{what}: {analysed:?}");
        assert_eq!(
            (
                analysed.encoding.as_str(),
                analysed.format,
                analysed.sheet_name.as_str(),
                analysed.would_create
            ),
            (v.encoding, v.format as i32, v.sheet, 3),
            "{what}"
        );
        start(&mut client, &id).await?;
        started.push((v.org, id, what.clone()));
    }

    let expected = expected_rows();
    for (org, id, what) in &started {
        let done = wait_terminal(&mut client, id).await?;
        assert_eq!(state(&done), pb::ImportState::Completed, "{what}: {done:?}");
        let p = done.progress.unwrap_or_default();
        assert_eq!((p.rows_created, p.rows_failed), (3, 0), "{what}");
        assert_eq!(stored_cases(&env, *org).await?, expected, "{what}");
    }
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_column_mapping_reads_headers_no_alias_knows() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    env.organization(7).await?;
    let mut client = env.client().await?;
    let csv = "Ref,Given,Family\nM1,Ada,King\nM2,Émile,Zola\n";

    // Without the mapping, the required columns are missing.
    let (_, unmapped) = files::draft_with_files(
        &mut client,
        7,
        pb::FailurePolicy::StopOnFirstError,
        &[NewFile::new("people.csv", "cases", csv)],
    )
    .await?;
    let f = &unmapped[0];
    assert_eq!(f.state, pb::FileState::Invalid as i32, "{f:?}");
    let missing: Vec<&str> = f
        .problems
        .iter()
        .filter(|p| p.kind == pb::FindingKind::MissingColumn as i32)
        .map(|p| p.column.as_str())
        .collect();
    assert_eq!(
        missing,
        vec!["case_number", "deceased_first_name", "deceased_last_name"]
    );

    let (id, mapped) = files::draft_with_files(
        &mut client,
        7,
        pb::FailurePolicy::StopOnFirstError,
        &[NewFile::new("people.csv", "cases", csv)
            .map("Ref", "case_number")
            .map("Given", "deceased_first_name")
            .map("Family", "deceased_last_name")],
    )
    .await?;
    let f = &mapped[0];
    assert_eq!(f.state, pb::FileState::Ready as i32, "{f:?}");
    let columns: Vec<(&str, &str)> = f
        .columns
        .iter()
        .map(|c| (c.header.as_str(), c.column.as_str()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("Ref", "case_number"),
            ("Given", "deceased_first_name"),
            ("Family", "deceased_last_name")
        ]
    );
    let report = files::analyze(&mut client, &id).await?;
    assert!(!report.blocking, "{report:#?}");
    assert_eq!(report.would_create, 2);
    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    let stored: Vec<(String, String, String)> = passare_imports_store::sqlx::query_as(
        "SELECT case_number, deceased_first_name, deceased_last_name
           FROM cases WHERE organization_id = 7 ORDER BY case_number",
    )
    .fetch_all(env.db.pool())
    .await?;
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        stored,
        vec![s("M1", "Ada", "King"), s("M2", "Émile", "Zola")]
    );

    // A mapping to a column the type lacks is refused at upload.
    let draft = files::create_draft(&mut client, 7, pb::FailurePolicy::StopOnFirstError).await?;
    let refused = files::upload(
        &mut client,
        &draft,
        &NewFile::new("people.csv", "cases", csv).map("Ref", "favourite_colour"),
    )
    .await
    .err()
    .map(|s| s.code());
    assert_eq!(refused, Some(tonic::Code::InvalidArgument));
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_named_twice_or_a_blank_header_over_values_blocks_the_file() -> anyhow::Result<()>
{
    let env = TestEnv::start(Options::default()).await?;
    env.organization(7).await?;
    let mut client = env.client().await?;
    let twice = "case_number,first name,deceased_last_name,Case #\nC1,Ann,Lee,C2\n";
    let blank = "case_number,first name,,deceased_last_name\nC1,Ann,,Lee\nC2,Bo,kept?,Ng\n";
    let unknown = "case_number,first name,deceased_last_name,Shoe size\nC1,Ann,Lee,9\n";
    let (id, uploaded) = files::draft_with_files(
        &mut client,
        7,
        pb::FailurePolicy::ImportValidRows,
        &[
            NewFile::new("twice.csv", "cases", twice),
            NewFile::new("blank.csv", "cases", blank),
            NewFile::new("unknown.csv", "cases", unknown),
        ],
    )
    .await?;
    let reasons = |f: &pb::ImportFile| {
        f.problems
            .iter()
            .map(|p| (p.row, p.column.clone(), p.reason.clone()))
            .collect::<Vec<_>>()
    };

    let f = &uploaded[0];
    assert_eq!(f.state, pb::FileState::Invalid as i32, "{f:?}");
    let found = reasons(f);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "case_number");
    assert!(
        found[0].2.contains(
            r#"column 1 ("case_number") and column 4 ("Case #") all name the column case_number"#
        ),
        "{found:?}"
    );

    let f = &uploaded[1];
    assert_eq!(f.state, pb::FileState::Invalid as i32, "{f:?}");
    let found = reasons(f);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].0, found[0].1.as_str()),
        (2, "column 3 (no header)")
    );
    assert!(
        found[0]
            .2
            .contains("column 3 has no header but row 2 has a value"),
        "{found:?}"
    );

    // A header of no column is only ignored, and said so rightly.
    assert_eq!(uploaded[2].state, pb::FileState::Ready as i32);
    let report = files::analyze(&mut client, &id).await?;
    assert!(report.blocking, "{report:#?}");
    let ignored = files::finding(&report, "unknown.csv", pb::FindingKind::UnknownColumn)
        .context("the unknown header is a finding")?;
    let sample = ignored.samples.first().context("a sample")?;
    assert_eq!(sample.column, "Shoe size");
    assert!(
        sample.reason.contains("is not a column of Cases"),
        "{sample:?}"
    );
    assert!(
        files::finding(&report, "twice.csv", pb::FindingKind::UnknownColumn).is_none(),
        "a repeated column is not called unknown: {report:#?}"
    );

    // A header the explicit mapping takes its column from is said to be so.
    let displaced = "Ref,first name,deceased_last_name,case_number\nC1,Ann,Lee,x\n";
    let (id, uploaded) = files::draft_with_files(
        &mut client,
        7,
        pb::FailurePolicy::ImportValidRows,
        &[NewFile::new("displaced.csv", "cases", displaced).map("Ref", "case_number")],
    )
    .await?;
    assert_eq!(
        uploaded[0].state,
        pb::FileState::Ready as i32,
        "{uploaded:?}"
    );
    let report = files::analyze(&mut client, &id).await?;
    let ignored = files::finding(&report, "displaced.csv", pb::FindingKind::UnknownColumn)
        .context("the displaced header is a finding")?;
    let sample = ignored.samples.first().context("a sample")?;
    assert_eq!(sample.column, "case_number");
    assert!(
        sample
            .reason
            .contains("names the column case_number of Cases, which the column mapping gives to another header"),
        "{sample:?}"
    );
    env.finish().await
}
