//! Reading a stored upload as UTF-8 delimited text: UTF-8 text stands as it
//! is (the scan made while it arrived holds); a workbook, UTF-16 or
//! Windows-1252 (detected, or as the request says) is converted to UTF-8 CSV,
//! stored beside the original and scanned again.

use passare_imports_domain::FileFormat;
use passare_imports_domain::file::decode::{self, DecodeError, Encoding, Sniffed};
use passare_imports_domain::file::scan::{ScanOptions, ScanReport, scan};

use super::FileUpload;
use crate::app::App;
use crate::error::ApiError;

/// A stored upload as the pipeline reads it.
pub(super) struct ReadFile {
    pub report: ScanReport,
    pub encoding: String,
    pub sheet: Option<String>,
    /// The UTF-8 CSV conversion the chunks index, when the original is not UTF-8 text.
    pub data_key: Option<String>,
}

/// What a stored upload must become before the UTF-8 pipeline reads it.
#[derive(Debug, Clone, Copy)]
enum Conversion {
    Workbook,
    Text(Encoding),
}

impl Conversion {
    fn format(self) -> FileFormat {
        match self {
            Conversion::Workbook => FileFormat::Xlsx,
            Conversion::Text(_) => FileFormat::Csv,
        }
    }

    fn encoding(self) -> String {
        match self {
            Conversion::Workbook => "xlsx".to_string(),
            Conversion::Text(e) => e.as_str().to_string(),
        }
    }
}

/// How a stored upload is read; see the module documentation.
pub(super) async fn read_as_text(
    app: &App,
    key: &str,
    size: u64,
    head: &[u8],
    report: ScanReport,
    upload: &FileUpload,
) -> Result<ReadFile, ApiError> {
    let as_is = |encoding: Encoding, report: ScanReport| ReadFile {
        report,
        encoding: encoding.as_str().into(),
        sheet: None,
        data_key: None,
    };
    let conversion = match (decode::sniff(head), upload.reading.encoding) {
        (Sniffed::Xlsx, _) => Conversion::Workbook,
        (_, Some(e)) if decode::needs_conversion(e) => Conversion::Text(e),
        (_, Some(e)) => return Ok(as_is(e, report)),
        (Sniffed::Text(e), None) if decode::needs_conversion(e) => Conversion::Text(e),
        (Sniffed::Text(_), None) if report.invalid_utf8 => Conversion::Text(Encoding::Windows1252),
        (Sniffed::Text(e), None) => return Ok(as_is(e, report)),
    };
    if head.starts_with(b"\xD0\xCF\x11\xE0") {
        return Ok(ReadFile {
            report: ScanReport::rejected(
                FileFormat::Xlsx,
                "the file is a legacy .xls workbook or a password-protected one; save it as .xlsx without a password, or as CSV",
            ),
            encoding: String::new(),
            sheet: None,
            data_key: None,
        });
    }
    let original = app.files.read_range(key, 0, size).await?;
    let (reading, def, chunk_rows) = (upload.reading.clone(), upload.def, app.config.chunk_rows);
    let converted = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(original.len());
        let sheet = match conversion {
            Conversion::Workbook => Some(
                decode::xlsx_to_csv(
                    std::io::Cursor::new(&original[..]),
                    reading.sheet.as_deref(),
                    &mut out,
                )?
                .sheet,
            ),
            Conversion::Text(e) => {
                decode::transcode(&original[..], e, &mut out)?;
                None
            }
        };
        let options = ScanOptions {
            explicit: &reading.mapping,
            delimiter: match conversion {
                Conversion::Workbook => Some(b','),
                Conversion::Text(_) => reading.delimiter,
            },
            chunk_rows,
        };
        let mut report = scan(&out[..], def, &options).map_err(DecodeError::from)?;
        if matches!(conversion, Conversion::Workbook) {
            report.format = FileFormat::Xlsx;
        }
        Ok::<_, DecodeError>((out, report, sheet))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("conversion task: {e}")))?;
    let (out, report, sheet) = match converted {
        Ok(done) => done,
        Err(e) => {
            return Ok(ReadFile {
                report: ScanReport::rejected(conversion.format(), e.to_string()),
                encoding: conversion.encoding(),
                sheet: upload.reading.sheet.clone(),
                data_key: None,
            });
        }
    };
    let data_key = format!("{key}.utf8.csv");
    let mut writer = app.files.create(&data_key).await?;
    writer.write(&out).await?;
    writer.commit().await?;
    Ok(ReadFile {
        report,
        encoding: conversion.encoding(),
        sheet,
        data_key: Some(data_key),
    })
}
