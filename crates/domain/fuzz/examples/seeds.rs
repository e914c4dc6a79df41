//! Writes the seed corpora of the fuzz targets to `corpus/<target>/` from
//! the sample files in `samples/`: `cargo run --example seeds` (run by
//! `scripts/fuzz.sh` when a corpus is missing).

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

use std::collections::BTreeSet;
use std::error::Error;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use passare_imports_domain::catalog::CATALOG;
use rust_xlsxwriter::Workbook;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let samples = here.join("../../../samples");
    let corpus = here.join("corpus");
    let mut files: Vec<(u8, String, Vec<u8>)> = Vec::new();
    for (i, def) in CATALOG.iter().enumerate() {
        let path = samples.join(format!("{}.csv", def.key));
        if let Ok(bytes) = std::fs::read(&path) {
            files.push((i as u8, def.key.to_string(), bytes));
        }
    }
    for (index, key, bytes) in &files {
        // Sniffed delimiter with 1 and 5 rows per chunk; tab-separated given.
        for options in [0u8, 4 << 2] {
            for target in ["scan", "chunk"] {
                write(
                    &corpus,
                    target,
                    &format!("{key}-{options}"),
                    &[&[*index, options], bytes],
                )?;
            }
        }
        let tsv = String::from_utf8_lossy(bytes).replace(',', "\t");
        write(
            &corpus,
            "scan",
            &format!("{key}-tab"),
            &[&[*index, 2], tsv.as_bytes()],
        )?;
        write(
            &corpus,
            "chunk",
            &format!("{key}-tab"),
            &[&[*index, 2], tsv.as_bytes()],
        )?;
        workbook_seeds(&corpus, *index, key, bytes)?;
    }
    value_seeds(&corpus, &files)?;
    println!("seeds written to {}", corpus.display());
    Ok(())
}

fn write(corpus: &Path, target: &str, name: &str, pieces: &[&[u8]]) -> Result<()> {
    let dir: PathBuf = corpus.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), pieces.concat())?;
    Ok(())
}

/// The sample as a workbook (whole, and as its XML parts) and as text in
/// each encoding the transcoder reads.
fn workbook_seeds(corpus: &Path, index: u8, key: &str, csv: &[u8]) -> Result<()> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv);
    for (r, record) in reader.records().enumerate() {
        for (c, field) in record?.iter().enumerate() {
            match field.parse::<f64>() {
                Ok(number) => sheet.write_number(r as u32, c as u16, number)?,
                Err(_) => sheet.write_string(r as u32, c as u16, field)?,
            };
        }
    }
    let xlsx = workbook.save_to_buffer()?;
    // The mode byte keeps the sample's import type: mode % 12 == index.
    let mode = |m: u8| {
        (0..=255u8)
            .find(|b| b % 3 == m && b % 12 == index % 12)
            .unwrap_or(m)
    };
    write(
        corpus,
        "workbook",
        &format!("{key}-xlsx"),
        &[&[mode(0)], &xlsx],
    )?;
    let mut zip = zip::ZipArchive::new(Cursor::new(&xlsx))?;
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for name in harness::PARTS {
        let mut bytes = Vec::new();
        if let Ok(mut file) = zip.by_name(name) {
            file.read_to_end(&mut bytes)?;
        }
        parts.push(bytes);
    }
    write(
        corpus,
        "workbook",
        &format!("{key}-parts"),
        &[&[mode(1)], &parts.join(&0xFF)],
    )?;
    let text = String::from_utf8_lossy(csv);
    let mut utf16 = vec![0xFF, 0xFE];
    text.encode_utf16()
        .for_each(|u| utf16.extend(u.to_le_bytes()));
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    // Encodings by (mode / 3) % 5: 0 UTF-8, 1 UTF-8 BOM, 2 UTF-16LE, 4 Windows-1252.
    write(
        corpus,
        "workbook",
        &format!("{key}-utf16"),
        &[&[2 + 3 * 2], &utf16],
    )?;
    write(
        corpus,
        "workbook",
        &format!("{key}-cp1252"),
        &[&[2 + 3 * 4], &latin1],
    )?;
    write(
        corpus,
        "workbook",
        &format!("{key}-utf8bom"),
        &[&[2 + 3], b"\xEF\xBB\xBF", csv],
    )?;
    Ok(())
}

/// Every distinct field of the samples, and forms the parsers document.
fn value_seeds(corpus: &Path, files: &[(u8, String, Vec<u8>)]) -> Result<()> {
    let mut values: BTreeSet<Vec<u8>> = [
        "1234.56",
        "$1,234.56",
        "(12.00)",
        "-$12.00",
        ".5",
        "2026-03-01",
        "3/7/1950",
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00.123-05:00",
        "2026-03-01 10:00+0500",
        "3/1/2026 10:00 AM",
        "03/01/2026 10:00:00 pm",
        "3/1/2026 14:30",
        "yes",
        "N",
        "0",
        "a.b@example.com",
        "(202) 555-0143",
        "+44 20 7946 0958",
        "202.555.0143 x12",
        "CA",
        "new york",
        "123-45-6789",
        "123456789",
        "12345",
        "12345-6789",
        "AB_12-x",
    ]
    .iter()
    .map(|v| v.as_bytes().to_vec())
    .collect();
    for (_, _, bytes) in files {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&bytes[..]);
        for record in reader.byte_records() {
            values.extend(record?.iter().filter(|f| !f.is_empty()).map(<[u8]>::to_vec));
        }
    }
    for (i, v) in values.iter().enumerate() {
        write(corpus, "values", &format!("v{i:04}"), &[v])?;
    }
    Ok(())
}
