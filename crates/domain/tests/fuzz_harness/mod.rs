//! What each fuzz target does with its input, shared by the fuzz targets
//! (`crates/domain/fuzz`, which include this file) and by the regression test
//! that feeds every stored input of `tests/fuzz-regressions/` through the same
//! functions. Each function panics when the code under test breaks a promise
//! (a panic, an error for input that must be readable, an inconsistent
//! report), which is what the fuzzer reports as a crash.
//!
//! Input layouts (the first bytes choose options, the rest is the file):
//! - `scan` / `chunk`: `[type, options, file…]` — `type % 12` picks the
//!   import type, `options & 3` the delimiter (sniffed, `,`, tab, `;`),
//!   `options >> 2` the rows per chunk (1 to 64).
//! - `values`: the whole input as one cell's text (lossy UTF-8).
//! - `workbook`: `[mode, rest…]` — `mode % 3`: 0 the rest is an XLSX file;
//!   1 the rest is the XML parts of a workbook separated by `0xFF`
//!   (worksheet, shared strings, workbook, styles), zipped by
//!   [`xlsx_from_parts`]; 2 the rest is text transcoded from the encoding
//!   `(mode / 3) % 5` picks. `(mode / 15) % 3` picks the sheet asked for
//!   (none, `Sheet1`, `sheet2`). Converted text then goes through the scan
//!   and the chunk parser as an upload's would.

#![allow(dead_code)]

use std::io::{Cursor, Write};

use chrono::NaiveDate;
use passare_imports_domain::catalog::{CATALOG, ImportTypeDef};
use passare_imports_domain::chunk::{ChunkLayout, parse_chunk};
use passare_imports_domain::file::decode::{Encoding, WorkbookLimits, transcode, xlsx_to_csv};
use passare_imports_domain::file::scan::{MAX_PROBLEMS, ScanOptions, ScanReport, scan};
use passare_imports_domain::values::{
    ValueKind, format_cents, normalise_text, parse_bool, parse_date, parse_datetime, parse_money,
};

/// The import type and scan options the first two bytes choose, and the file.
pub fn split_scan_input(
    data: &[u8],
) -> Option<(&'static ImportTypeDef, ScanOptions<'static>, &[u8])> {
    let [kind, options, file @ ..] = data else {
        return None;
    };
    let def = CATALOG[usize::from(*kind) % CATALOG.len()];
    let delimiter = [None, Some(b','), Some(b'\t'), Some(b';')][usize::from(options & 3)];
    let chunk_rows = u64::from(options >> 2) + 1;
    Some((
        def,
        ScanOptions {
            provided: &[],
            explicit: &[],
            delimiter,
            chunk_rows,
        },
        file,
    ))
}

/// Fuzz target `scan`: the structural scan of a text file.
pub fn scan_target(data: &[u8]) {
    if let Some((def, options, file)) = split_scan_input(data) {
        checked_scan(def, &options, file);
    }
}

/// Fuzz target `chunk`: a file scanned, then every chunk the scan cut parsed.
pub fn chunk_target(data: &[u8]) {
    if let Some((def, options, file)) = split_scan_input(data) {
        scan_and_parse(def, &options, file);
    }
}

/// Scans `file` and checks the report is consistent with it.
pub fn checked_scan(def: &ImportTypeDef, options: &ScanOptions<'_>, file: &[u8]) -> ScanReport {
    let report = match scan(file, def, options) {
        Ok(r) => r,
        Err(e) => panic!("scanning a file in memory failed instead of reporting: {e}"),
    };
    assert!(report.problems.len() <= MAX_PROBLEMS);
    assert_eq!(
        report.problems.len() as u64,
        report.problem_count.min(MAX_PROBLEMS as u64)
    );
    let mut next_row = 1;
    for (i, c) in report.chunks.iter().enumerate() {
        assert_eq!(c.seq as usize, i, "{:?}", report.chunks);
        assert_eq!(c.first_row, next_row, "{:?}", report.chunks);
        assert!(c.rows > 0 && c.rows <= options.chunk_rows.max(1));
        assert!(
            c.start < c.end && c.end <= file.len() as u64,
            "{c:?} of {}",
            file.len()
        );
        if let Some(previous) = i.checked_sub(1).map(|p| &report.chunks[p]) {
            assert_eq!(previous.end, c.start, "{:?}", report.chunks);
        }
        next_row += c.rows;
    }
    let records: u64 = report.chunks.iter().map(|c| c.rows).sum();
    assert!(report.row_count <= records);
    for p in &report.problems {
        assert!(p.row <= records + 1, "{p:?} beyond {records} records");
    }
    report
}

/// Scans `file`, then parses each chunk as the worker would, with the
/// header mapping the scan found.
pub fn scan_and_parse(def: &'static ImportTypeDef, options: &ScanOptions<'_>, file: &[u8]) {
    let report = checked_scan(def, options, file);
    let (mapping, _) = def.map_headers_with(&report.headers, options.explicit);
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    for c in &report.chunks {
        let bytes = &file[c.start as usize..c.end as usize];
        let layout = ChunkLayout {
            def,
            mapping: &mapping,
            delimiter: report.delimiter,
            first_row: c.first_row,
            row_numbers: None,
            today,
            rules: None,
            rule_samples: 0,
        };
        let parsed = match parse_chunk(bytes, layout) {
            Ok(p) => p,
            Err(e) => panic!("chunk {c:?} failed to parse instead of reporting: {e}"),
        };
        let rows = parsed.batch.num_rows();
        assert_eq!(parsed.valid.len(), rows);
        assert!(rows as u64 <= c.rows);
        let last = c.first_row + c.rows;
        for i in 0..rows {
            let row = parsed.row_number(i);
            assert!(
                (c.first_row..last).contains(&row),
                "row {row} outside {c:?}"
            );
        }
        for p in &parsed.problems {
            assert!((c.first_row..last).contains(&p.row), "{p:?} outside {c:?}");
            assert!(p.value.chars().count() <= 256, "{p:?}");
            assert!(!p.reason.is_empty());
        }
        for (i, valid) in parsed.valid.iter().enumerate() {
            let row = parsed.row_number(i);
            let explained = parsed.problems.iter().any(|p| p.row == row);
            assert!(*valid || explained, "row {row} failed without a problem");
        }
    }
}

/// Fuzz target `values`: every value parser on one cell's text. Parsed values
/// must read back as themselves, as a file exported from Passare and imported
/// again would have them.
pub fn values_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let raw = text.as_ref();
    if let Ok(cents) = parse_money(raw) {
        assert_eq!(parse_money(&format_cents(cents)), Ok(cents), "{raw:?}");
    }
    if let Ok(date) = parse_date(raw) {
        assert_eq!(parse_date(&date.to_string()), Ok(date), "{raw:?}");
    }
    if let Ok(micros) = parse_datetime(raw) {
        let written = chrono::DateTime::from_timestamp_micros(micros)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let Some(written) = written else {
            panic!("{raw:?} parsed to {micros} µs, which is no date-time");
        };
        assert_eq!(parse_datetime(&written), Ok(micros), "{raw:?} as {written}");
    }
    if let Ok(b) = parse_bool(raw) {
        assert_eq!(parse_bool(&b.to_string()), Ok(b), "{raw:?}");
    }
    for kind in text_kinds() {
        match normalise_text(kind, raw) {
            Ok(value) => assert_eq!(
                normalise_text(kind, &value).as_deref(),
                Ok(&*value),
                "{} of {raw:?}",
                kind.name()
            ),
            Err(reason) => assert!(!reason.is_empty()),
        }
    }
}

/// The kinds stored as normalised text, enums of the catalog included.
fn text_kinds() -> Vec<ValueKind> {
    let mut kinds = vec![
        ValueKind::Text,
        ValueKind::Email,
        ValueKind::Phone,
        ValueKind::UsState,
        ValueKind::Ssn,
        ValueKind::Zip,
        ValueKind::Code,
    ];
    for def in CATALOG {
        for col in def.columns {
            if let ValueKind::Enum(_) = col.kind {
                kinds.push(col.kind);
            }
        }
    }
    kinds
}

/// Fuzz target `workbook`: XLSX conversion and transcoding, then the scan
/// and chunk parser over what they write.
pub fn workbook_target(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    let sheet = [None, Some("Sheet1"), Some("sheet2")][usize::from(mode / 15) % 3];
    let converted = match mode % 3 {
        0 => checked_xlsx(rest, sheet),
        1 => checked_xlsx(&xlsx_from_parts(rest), sheet),
        _ => {
            let encoding = [
                Encoding::Utf8,
                Encoding::Utf8Bom,
                Encoding::Utf16Le,
                Encoding::Utf16Be,
                Encoding::Windows1252,
            ][usize::from(mode / 3) % 5];
            Some(checked_transcode(rest, encoding))
        }
    };
    if let Some(text) = converted {
        let def = CATALOG[usize::from(*mode) % CATALOG.len()];
        let options = ScanOptions {
            provided: &[],
            explicit: &[],
            delimiter: None,
            chunk_rows: 16,
        };
        scan_and_parse(def, &options, &text);
    }
}

/// Converts a workbook; a refusal is fine, but what is written must be CSV
/// whose every record has the same number of fields, as many as counted.
pub fn checked_xlsx(xlsx: &[u8], sheet: Option<&str>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let done = xlsx_to_csv(
        Cursor::new(xlsx),
        sheet,
        &WorkbookLimits::default(),
        &mut out,
    )
    .ok()?;
    assert_eq!(done.bytes, out.len() as u64);
    assert!(std::str::from_utf8(&out).is_ok(), "the CSV is not UTF-8");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&out[..]);
    let mut records = 0u64;
    let mut width = None;
    for record in reader.byte_records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => panic!("the CSV written cannot be read back: {e}"),
        };
        records += 1;
        assert_eq!(
            *width.get_or_insert(record.len()),
            record.len(),
            "ragged CSV"
        );
    }
    assert_eq!(records, done.rows);
    Some(out)
}

/// Transcodes text; the result is UTF-8 unless the input claimed UTF-8
/// (which passes through for the scan to locate bad bytes).
pub fn checked_transcode(text: &[u8], encoding: Encoding) -> Vec<u8> {
    let mut out = Vec::new();
    let written = match transcode(text, encoding, &mut out) {
        Ok(n) => n,
        Err(e) => panic!("transcoding from memory failed: {e}"),
    };
    assert_eq!(written, out.len() as u64);
    match encoding {
        Encoding::Utf8 | Encoding::Utf8Bom
            if !text.starts_with(b"\xFF\xFE") && !text.starts_with(b"\xFE\xFF") =>
        {
            let expected = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            assert_eq!(out, expected, "UTF-8 did not pass through");
        }
        _ => assert!(
            std::str::from_utf8(&out).is_ok(),
            "transcoded text is not UTF-8"
        ),
    }
    out
}

/// Names of the XML parts [`xlsx_from_parts`] takes, in order.
pub const PARTS: [&str; 4] = [
    "xl/worksheets/sheet1.xml",
    "xl/sharedStrings.xml",
    "xl/workbook.xml",
    "xl/styles.xml",
];

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#;

const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;

const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#;

const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#;

/// An XLSX file (stored, uncompressed) whose worksheet, shared strings,
/// workbook and styles parts are the `0xFF`-separated pieces of `data`; the
/// package's fixed parts (content types, relationships) are always there, a
/// missing workbook part is a one-sheet workbook, other missing parts are
/// left out. Lets the fuzzer mutate the XML the reader parses rather than
/// compressed bytes whose checksums would refuse almost every mutation.
pub fn xlsx_from_parts(data: &[u8]) -> Vec<u8> {
    let mut pieces = data.split(|b| *b == 0xFF);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut add = |name: &str, bytes: &[u8]| {
        // Writing to memory cannot fail but for zip's own limits.
        if zip.start_file(name, stored).is_ok() {
            let _ = zip.write_all(bytes);
        }
    };
    add("[Content_Types].xml", CONTENT_TYPES.as_bytes());
    add("_rels/.rels", ROOT_RELS.as_bytes());
    add("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes());
    for name in PARTS {
        match pieces.next() {
            Some(bytes) => add(name, bytes),
            None if name == "xl/workbook.xml" => add(name, WORKBOOK.as_bytes()),
            None => {}
        }
    }
    zip.finish().map(Cursor::into_inner).unwrap_or_default()
}
