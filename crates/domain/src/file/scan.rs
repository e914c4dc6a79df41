//! Structural scan of an uploaded file: format, delimiter, header, row count,
//! broken rows, and the byte ranges of its chunks. Streams the file once with
//! memory that does not grow with its size. Values are not parsed here; that
//! happens per chunk (see `chunk`).

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use csv::{ByteRecord, ReaderBuilder};

use crate::catalog::ImportTypeDef;
use crate::model::{ChunkRange, FileFormat, FindingKind, RowProblem, excerpt};

/// At most this many problems are kept; the count of all is kept too.
pub const MAX_PROBLEMS: usize = 100;

const SNIFF_BYTES: usize = 64 * 1024;

/// Largest record the scan accepts. A larger one almost always means a quoted
/// field whose closing quote is missing; holding it would make memory grow
/// with the file.
pub const MAX_RECORD_BYTES: u64 = 4 * 1024 * 1024;
/// A chunk is closed at this size even before it has its rows.
pub const MAX_CHUNK_BYTES: u64 = 64 * 1024 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the scan learned about a file.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub format: FileFormat,
    pub delimiter: u8,
    pub headers: Vec<String>,
    /// Data records that are not blank.
    pub row_count: u64,
    pub chunks: Vec<ChunkRange>,
    /// Structural problems (the first [`MAX_PROBLEMS`]); any makes the file invalid.
    pub problems: Vec<RowProblem>,
    pub problem_count: u64,
    /// Bytes that are not UTF-8 were seen: the file is likely Windows-1252.
    pub invalid_utf8: bool,
}

impl ScanReport {
    pub fn is_valid(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, p: RowProblem) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        }
    }

    /// A report for a delimited text file before anything was read.
    fn empty(delimiter: u8) -> Self {
        Self {
            format: if delimiter == b'\t' {
                FileFormat::Tsv
            } else {
                FileFormat::Csv
            },
            delimiter,
            headers: Vec::new(),
            row_count: 0,
            chunks: Vec::new(),
            problems: Vec::new(),
            problem_count: 0,
            invalid_utf8: false,
        }
    }

    /// A report for a file that cannot be read at all.
    pub fn rejected(format: FileFormat, reason: impl Into<String>) -> Self {
        let mut r = Self::empty(b',');
        r.format = format;
        r.problem(RowProblem::file(reason));
        r
    }
}

/// How a file is to be read.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions<'a> {
    /// Explicit mapping of file header to column, ahead of names and aliases.
    pub explicit: &'a [(String, String)],
    /// Columns transform rules fill: a required one needs no header.
    pub provided: &'a [&'static str],
    /// The delimiter, when the request gives it; sniffed otherwise.
    pub delimiter: Option<u8>,
    /// Records per chunk.
    pub chunk_rows: u64,
}

/// Scans a delimited text file for `def`, cutting chunks of
/// `options.chunk_rows` records.
pub fn scan<R: Read>(
    mut input: R,
    def: &ImportTypeDef,
    options: &ScanOptions<'_>,
) -> io::Result<ScanReport> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut input)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)?;
    if let Some(rejected) = unreadable_text(&head) {
        return Ok(rejected);
    }
    let bom = if head.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    let delimiter = options
        .delimiter
        .unwrap_or_else(|| sniff_delimiter(&head[bom..]));
    let mut body = io::Cursor::new(head).chain(input);
    if bom > 0 {
        let mut skip = [0u8; 3];
        body.read_exact(&mut skip)?;
    }
    let mut records = Records::new(body, delimiter, bom as u64);
    let mut report = ScanReport::empty(delimiter);
    let mut record = ByteRecord::new();
    match records.next(&mut record)? {
        Next::Record => {}
        Next::End => {
            report.problem(RowProblem::file("the file is empty: no header row"));
            return Ok(report);
        }
        Next::TooLarge => {
            report.problem(RowProblem::file(too_large(0)));
            return Ok(report);
        }
    }
    read_header(&record, &mut report);
    map_header(def, options, &mut report);
    scan_rows(
        &mut records,
        record.len(),
        options.chunk_rows.max(1),
        &mut report,
    )?;
    if report.row_count == 0 && report.problem_count == 0 {
        report.problem(RowProblem::file("the file has a header but no data rows"));
    }
    Ok(report)
}

/// A report for content that is no delimited UTF-8 text at all: a workbook
/// or UTF-16 reaching the text scan (uploads convert both before scanning).
fn unreadable_text(head: &[u8]) -> Option<ScanReport> {
    if head.starts_with(b"PK\x03\x04") {
        return Some(ScanReport::rejected(
            FileFormat::Xlsx,
            "XLSX workbooks cannot be imported by this version of the service; export the sheet as CSV (UTF-8)",
        ));
    }
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return Some(ScanReport::rejected(
            FileFormat::Csv,
            "the file is UTF-16; save it as CSV UTF-8",
        ));
    }
    None
}

/// The header's names, each checked to be UTF-8 without NUL.
fn read_header(record: &ByteRecord, report: &mut ScanReport) {
    for (i, field) in record.iter().enumerate() {
        let reason = match std::str::from_utf8(field) {
            Ok(h) if h.contains('\0') => "header contains a NUL character",
            Ok(h) => {
                report.headers.push(h.trim().to_string());
                continue;
            }
            Err(_) => {
                report.invalid_utf8 = true;
                "header is not valid UTF-8; save the file as CSV UTF-8"
            }
        };
        let text = String::from_utf8_lossy(field);
        report.headers.push(excerpt(text.trim()));
        report.problem(RowProblem {
            row: 0,
            column: format!("column {}", i + 1),
            value: excerpt(&text),
            reason: reason.into(),
            kind: FindingKind::Structure,
        });
    }
}

/// Problems of the header as `def` reads it: explicit mappings to columns
/// the type does not have, and required columns no header provides.
fn map_header(def: &ImportTypeDef, options: &ScanOptions<'_>, report: &mut ScanReport) {
    let explicit = options.explicit;
    let (mapped, unknown) = def.map_headers_with(&report.headers, explicit);
    for column in unknown {
        let reason = format!(
            "the column mapping names {column:?}, which is not a column of {}",
            def.display_name
        );
        report.problem(RowProblem {
            row: 0,
            column,
            value: String::new(),
            reason,
            kind: FindingKind::MissingColumn,
        });
    }
    for (column, at) in def.repeated_columns(&report.headers, explicit) {
        let named: Vec<String> = at.iter().map(|&i| header_at(&report.headers, i)).collect();
        let reason = format!(
            "{} all name the column {column} of {}; only one header may name a column, or the values under the others would be lost: rename or remove all but one",
            named.join(" and "),
            def.display_name
        );
        report.problem(RowProblem {
            row: 0,
            column: column.to_string(),
            value: String::new(),
            reason,
            kind: FindingKind::Structure,
        });
    }
    for missing in def.missing_required(&mapped) {
        if options.provided.contains(&missing) {
            continue;
        }
        let reason = format!(
            "required column {missing} is missing from the header ({})",
            report.headers.join(", ")
        );
        report.problem(RowProblem {
            row: 0,
            column: missing.to_string(),
            value: String::new(),
            reason,
            kind: FindingKind::MissingColumn,
        });
    }
}

/// A header as findings name it: its position (from 1) and its text.
fn header_at(headers: &[String], i: usize) -> String {
    match headers.get(i).map(String::as_str) {
        Some(h) if !h.is_empty() => format!("column {} ({h:?})", i + 1),
        _ => format!("column {} (no header)", i + 1),
    }
}

/// Reads the data records: counts rows, cuts chunks on record boundaries,
/// and locates ragged rows and bytes that are not UTF-8.
fn scan_rows<R: Read>(
    records: &mut Records<R>,
    width: usize,
    chunk_rows: u64,
    report: &mut ScanReport,
) -> io::Result<()> {
    let mut record = ByteRecord::new();
    let mut row: u64 = 0;
    let mut current: Option<ChunkRange> = None;
    // Columns without a header whose values were not seen yet.
    let mut unnamed: Vec<usize> = (0..report.headers.len())
        .filter(|&i| report.headers[i].is_empty())
        .collect();
    loop {
        match records.next(&mut record)? {
            Next::Record => {}
            Next::End => break,
            Next::TooLarge => {
                report.problem(RowProblem {
                    row: row + 1,
                    column: String::new(),
                    value: String::new(),
                    reason: too_large(row + 1),
                    kind: FindingKind::Structure,
                });
                return Ok(());
            }
        }
        row += 1;
        let start = records.start_of(&record);
        let chunk = current.get_or_insert(ChunkRange {
            seq: report.chunks.len() as u32,
            first_row: row,
            rows: 0,
            start,
            end: start,
        });
        chunk.rows += 1;
        let end = records.position();
        if chunk.rows == chunk_rows || end - chunk.start >= MAX_CHUNK_BYTES {
            chunk.end = end;
            report.chunks.extend(current.take());
        }
        if !is_blank(&record) {
            report.row_count += 1;
            check_row(&record, row, width, report);
            check_unnamed(&record, row, &mut unnamed, report);
        }
    }
    if let Some(mut last) = current {
        last.end = records.position();
        report.chunks.push(last);
    }
    Ok(())
}

/// A value under a column without a header would be dropped: the first
/// such value of each column is a problem naming the column and the row.
fn check_unnamed(record: &ByteRecord, row: u64, unnamed: &mut Vec<usize>, report: &mut ScanReport) {
    unnamed.retain(|&i| {
        let Some(field) = record.get(i) else {
            return true;
        };
        let value = String::from_utf8_lossy(field);
        if value.trim().is_empty() {
            return true;
        }
        report.problem(RowProblem {
            row,
            column: header_at(&report.headers, i),
            value: excerpt(&value),
            reason: format!(
                "column {} has no header but row {row} has a value in it, which would be lost: give the column a header, or delete its values",
                i + 1
            ),
            kind: FindingKind::Structure,
        });
        false
    });
}

/// Structural problems of one data record: a field count other than the
/// header's, fields that are not UTF-8.
fn check_row(record: &ByteRecord, row: u64, width: usize, report: &mut ScanReport) {
    if record.len() != width {
        let spans_lines = record.iter().any(|f| f.contains(&b'\n'));
        report.problem(RowProblem {
            row,
            column: String::new(),
            value: String::new(),
            reason: format!(
                "row has {} fields but the header has {width}{}",
                record.len(),
                if spans_lines {
                    "; a quoted field may be missing its closing quote"
                } else {
                    ""
                }
            ),
            kind: FindingKind::Structure,
        });
    }
    for (i, field) in record.iter().enumerate() {
        if let Err(e) = std::str::from_utf8(field) {
            let column = report
                .headers
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("column {}", i + 1));
            report.problem(RowProblem {
                row,
                column,
                value: excerpt(&String::from_utf8_lossy(field)),
                reason: format!(
                    "not valid UTF-8 (byte {} of the value); save the file as CSV UTF-8",
                    e.valid_up_to() + 1
                ),
                kind: FindingKind::Structure,
            });
            report.invalid_utf8 = true;
        }
    }
}

/// The records of a file, read with a guard against records that grow
/// without end, with byte positions in the original file (BOM included).
struct Records<R> {
    reader: csv::Reader<RecordGuard<R>>,
    boundary: Rc<Cell<u64>>,
    bom: u64,
}

impl<R: Read> Records<R> {
    fn new(body: R, delimiter: u8, bom: u64) -> Self {
        let boundary = Rc::new(Cell::new(0));
        let reader = ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(RecordGuard {
                inner: body,
                read: 0,
                boundary: boundary.clone(),
            });
        Self {
            reader,
            boundary,
            bom,
        }
    }

    /// Reads the next record, or says the record being read is too large.
    fn next(&mut self, record: &mut ByteRecord) -> io::Result<Next> {
        match self.reader.read_byte_record(record) {
            Ok(true) => {
                self.boundary.set(self.reader.position().byte());
                Ok(Next::Record)
            }
            Ok(false) => Ok(Next::End),
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(io)
                    if io
                        .get_ref()
                        .is_some_and(|inner| inner.is::<RecordTooLarge>()) =>
                {
                    Ok(Next::TooLarge)
                }
                _ => Err(e.into()),
            },
        }
    }

    /// Where `record` (the last one read) starts in the file.
    fn start_of(&self, record: &ByteRecord) -> u64 {
        record.position().map_or(0, |p| p.byte()) + self.bom
    }

    /// Where the reader stands in the file: the end of the last record.
    fn position(&self) -> u64 {
        self.reader.position().byte() + self.bom
    }
}

enum Next {
    Record,
    End,
    TooLarge,
}

fn too_large(row: u64) -> String {
    format!(
        "{} is larger than {} MiB; a quoted field is probably missing its closing quote",
        if row == 0 {
            "the header".to_string()
        } else {
            format!("row {row}")
        },
        MAX_RECORD_BYTES / (1024 * 1024)
    )
}

#[derive(Debug)]
struct RecordTooLarge;

impl std::fmt::Display for RecordTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record too large")
    }
}

impl std::error::Error for RecordTooLarge {}

/// Stops reading when the record in progress has grown past
/// [`MAX_RECORD_BYTES`] (the csv reader keeps a whole record in memory).
struct RecordGuard<R> {
    inner: R,
    read: u64,
    /// Where the last complete record ended, set by the scan.
    boundary: Rc<Cell<u64>>,
}

impl<R: Read> Read for RecordGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The reader's own buffer may hold up to its capacity beyond the record.
        if self.read.saturating_sub(self.boundary.get()) > MAX_RECORD_BYTES + 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLarge));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// A record whose every field is empty after trimming carries no row.
pub fn is_blank(record: &ByteRecord) -> bool {
    record.iter().all(|f| f.trim_ascii().is_empty())
}

/// Picks the delimiter that occurs most often outside quotes in the first line.
pub fn sniff_delimiter(head: &[u8]) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b'\t', b';', b'|'];
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = CANDIDATES.iter().position(|c| *c == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let (best, count) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (**c, usize::MAX - i))
        .map_or((0, 0), |(i, c)| (i, *c));
    if count == 0 { b',' } else { CANDIDATES[best] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CASES;

    const HEADER: &str = "case_number,deceased_first_name,deceased_last_name\n";

    fn run(text: &[u8], chunk_rows: u64) -> ScanReport {
        scan(
            text,
            &CASES,
            &ScanOptions {
                provided: &[],
                explicit: &[],
                delimiter: None,
                chunk_rows,
            },
        )
        .unwrap()
    }

    #[test]
    fn counts_rows_and_cuts_chunks_on_record_boundaries() {
        let mut text = String::from(HEADER);
        for i in 1..=7 {
            text.push_str(&format!("C{i},\"Ann\nMarie\",Lee\n"));
        }
        let r = run(text.as_bytes(), 3);
        assert!(r.is_valid(), "{:?}", r.problems);
        assert_eq!(r.row_count, 7);
        assert_eq!(r.chunks.len(), 3);
        assert_eq!(
            r.chunks
                .iter()
                .map(|c| (c.first_row, c.rows))
                .collect::<Vec<_>>(),
            vec![(1, 3), (4, 3), (7, 1)]
        );
        assert_eq!(r.chunks[0].start as usize, HEADER.len());
        assert_eq!(r.chunks[2].end as usize, text.len());
        for w in r.chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        let second = &text.as_bytes()[r.chunks[1].start as usize..r.chunks[1].end as usize];
        assert!(
            second.starts_with(b"C4,"),
            "{}",
            String::from_utf8_lossy(second)
        );
    }

    #[test]
    fn bom_tabs_crlf_and_trailing_blank_lines() {
        let text = b"\xEF\xBB\xBFcase_number\tdeceased_first_name\tdeceased_last_name\r\nC1\tAnn\tLee\r\n\r\n\t\t\r\n";
        let r = run(text, 10);
        assert!(r.is_valid(), "{:?}", r.problems);
        assert_eq!(r.format, FileFormat::Tsv);
        assert_eq!(r.headers[0], "case_number");
        assert_eq!(r.row_count, 1);
        let chunk = &text[r.chunks[0].start as usize..r.chunks[0].end as usize];
        assert!(
            chunk.trim_ascii_start().starts_with(b"C1\t"),
            "{:?} {}",
            r.chunks,
            String::from_utf8_lossy(chunk)
        );
    }

    #[test]
    fn ragged_rows_and_bad_utf8_are_located() {
        let mut text = HEADER.as_bytes().to_vec();
        text.extend_from_slice(b"C1,Ann,Lee\nC2,Bob\nC3,Jos\xE9,Diaz\n");
        let r = run(&text, 10);
        assert!(!r.is_valid());
        assert_eq!(r.problem_count, 2);
        assert_eq!(r.problems[0].row, 2);
        assert!(
            r.problems[0]
                .reason
                .contains("2 fields but the header has 3")
        );
        assert_eq!(r.problems[1].row, 3);
        assert_eq!(r.problems[1].column, "deceased_first_name");
        assert!(r.problems[1].reason.contains("UTF-8"));
    }

    #[test]
    fn an_unclosed_quote_is_named() {
        let text = format!("{HEADER}C1,Ann,Lee\nC2,\"Bob,Ray\nC3,Cy,Do\n");
        let r = run(text.as_bytes(), 10);
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].row, 2);
        assert!(
            r.problems[0].reason.contains("closing quote"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn an_unclosed_quote_before_a_long_tail_stops_the_scan_with_its_row() {
        let mut text = format!("{HEADER}C1,Ann,Lee\nC2,\"Bob,Ray\n").into_bytes();
        text.extend(std::iter::repeat_n(b'x', 6 * 1024 * 1024));
        let r = run(&text, 10);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert_eq!(r.problems[0].row, 2);
        assert!(r.problems[0].reason.contains("closing quote"));
    }

    #[test]
    fn missing_required_columns_and_empty_files() {
        let r = run(b"case_number,first name\nC1,Ann\n", 10);
        assert_eq!(r.problems[0].column, "deceased_last_name");
        let r = run(b"", 10);
        assert!(r.problems[0].reason.contains("empty"));
        let r = run(HEADER.as_bytes(), 10);
        assert!(r.problems[0].reason.contains("no data rows"));
        let r = run(b"PK\x03\x04rest", 10);
        assert_eq!(r.format, FileFormat::Xlsx);
        assert!(!r.is_valid());
    }

    #[test]
    fn a_column_named_twice_is_refused_naming_both_headers() {
        let r = run(
            b"case_number,first name,deceased_last_name,Case #\nC1,Ann,Lee,C9\n",
            10,
        );
        assert!(!r.is_valid());
        assert_eq!(r.problem_count, 1, "{:?}", r.problems);
        let p = &r.problems[0];
        assert_eq!(p.column, "case_number");
        assert!(
            p.reason
                .contains("column 1 (\"case_number\") and column 4 (\"Case #\")"),
            "{}",
            p.reason
        );
        assert!(!p.reason.contains("not a column"), "{}", p.reason);
        // Once only, the file is read as before.
        assert!(
            run(
                b"case_number,first name,deceased_last_name\nC1,Ann,Lee\n",
                10
            )
            .is_valid()
        );
    }

    #[test]
    fn an_explicit_mapping_counts_as_naming_its_column() {
        let explicit = [("Ref".to_string(), "case_number".to_string())];
        let options = ScanOptions {
            provided: &[],
            explicit: &explicit,
            delimiter: None,
            chunk_rows: 10,
        };
        let text = b"Ref,first name,deceased_last_name\nC1,Ann,Lee\n";
        assert!(scan(&text[..], &CASES, &options).unwrap().is_valid());
        // The mapping taking case_number from a header matching it by alias is the caller's choice.
        let text = b"Ref,first name,deceased_last_name,case_number\nC1,Ann,Lee,x\n";
        assert!(scan(&text[..], &CASES, &options).unwrap().is_valid());
        let both = [
            ("Ref".to_string(), "case_number".to_string()),
            ("Other".to_string(), "case_number".to_string()),
        ];
        let options = ScanOptions {
            provided: &[],
            explicit: &both,
            ..options
        };
        let text = b"Ref,first name,deceased_last_name,Other\nC1,Ann,Lee,x\n";
        let r = scan(&text[..], &CASES, &options).unwrap();
        assert!(
            r.problems[0].reason.contains("column 4 (\"Other\")"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn a_blank_header_over_values_is_refused_with_its_first_row() {
        let r = run(
            b"case_number,,first name,deceased_last_name,\nC1,,Ann,Lee,\nC2,x,Bo,Ng,\nC3,y,Cy,Ox,\n",
            10,
        );
        assert_eq!(r.problem_count, 1, "{:?}", r.problems);
        let p = &r.problems[0];
        assert_eq!(
            (p.row, p.column.as_str(), p.value.as_str()),
            (2, "column 2 (no header)", "x")
        );
        assert!(p.reason.contains("column 2 has no header"), "{}", p.reason);
        // A blank header over a column without values (a trailing delimiter) is fine.
        assert!(
            run(
                b"case_number,first name,deceased_last_name,\nC1,Ann,Lee,\n",
                10
            )
            .is_valid()
        );
        assert!(
            run(
                b"case_number,first name,deceased_last_name,\nC1,Ann,Lee, \n",
                10
            )
            .is_valid()
        );
    }
}
