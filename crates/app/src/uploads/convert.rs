//! Reading a stored upload as UTF-8 delimited text: UTF-8 text stands as it
//! is (the scan made while it arrived holds); a workbook, UTF-16 or
//! Windows-1252 (detected, or as the request says) is converted to UTF-8 CSV,
//! stored beside the original and scanned again.

use passare_imports_domain::FileFormat;
use std::io::{BufReader, BufWriter, Read, Seek};

use passare_imports_domain::file::decode::{
    self, Bounded, DecodeError, Encoding, Sniffed, WorkbookLimits,
};
use passare_imports_domain::file::scan::{ScanOptions, ScanReport, scan};
use tokio::io::AsyncReadExt;

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
    let source = tokio_util::io::SyncIoBridge::new(app.files.open(key).await?);
    let (explicit, provided) = upload.scan_mapping();
    let job = Job {
        conversion,
        reading: upload.reading.clone(),
        explicit,
        provided,
        def: upload.def,
        chunk_rows: app.config.chunk_rows,
        limits: app.config.workbook_limits(),
        max_converted: app.config.max_converted_bytes,
    };
    let converted = tokio::task::spawn_blocking(move || job.run(source))
        .await
        .map_err(|e| ApiError::Internal(format!("conversion task: {e}")))?;
    let (file, report, sheet) = match converted {
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
    store_file(app, &data_key, file).await?;
    Ok(ReadFile {
        report,
        encoding: conversion.encoding(),
        sheet,
        data_key: Some(data_key),
    })
}

/// A conversion to run on a blocking thread.
struct Job {
    conversion: Conversion,
    reading: super::ReadOptions,
    explicit: Vec<(String, String)>,
    provided: Vec<&'static str>,
    def: &'static passare_imports_domain::catalog::ImportTypeDef,
    chunk_rows: u64,
    limits: WorkbookLimits,
    max_converted: u64,
}

impl Job {
    /// Converts the upload read from `source` into a temporary file, then
    /// scans that file: memory stays bounded whatever the file's size (a
    /// workbook is first copied to a temporary file, as its reader seeks).
    fn run<R: Read>(
        self,
        mut source: R,
    ) -> Result<(std::fs::File, ScanReport, Option<String>), DecodeError> {
        let mut out = Bounded::new(BufWriter::new(tempfile::tempfile()?), self.max_converted);
        let sheet = match self.conversion {
            Conversion::Workbook => {
                let mut original = tempfile::tempfile()?;
                std::io::copy(&mut source, &mut original)?;
                original.rewind()?;
                let done = decode::xlsx_to_csv(
                    BufReader::new(original),
                    self.reading.sheet.as_deref(),
                    &self.limits,
                    &mut out,
                );
                Some(done.map_err(|e| out.error(e))?.sheet)
            }
            Conversion::Text(e) => {
                decode::transcode(BufReader::new(source), e, &mut out).map_err(|e| out.error(e))?;
                None
            }
        };
        let mut file = out
            .into_inner()
            .into_inner()
            .map_err(|e| DecodeError::Io(e.into_error()))?;
        file.rewind()?;
        let options = ScanOptions {
            provided: &self.provided,
            explicit: &self.explicit,
            delimiter: match self.conversion {
                Conversion::Workbook => Some(b','),
                Conversion::Text(_) => self.reading.delimiter,
            },
            chunk_rows: self.chunk_rows,
        };
        let mut report =
            scan(BufReader::new(&mut file), self.def, &options).map_err(DecodeError::from)?;
        if matches!(self.conversion, Conversion::Workbook) {
            report.format = FileFormat::Xlsx;
        }
        file.rewind()?;
        Ok((file, report, sheet))
    }
}

/// Streams a temporary file into storage under `key`.
async fn store_file(app: &App, key: &str, file: std::fs::File) -> Result<(), ApiError> {
    let mut file = tokio::fs::File::from_std(file);
    let mut writer = app.files.create(key).await?;
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| ApiError::Internal(format!("reading the conversion back: {e}")))?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n]).await?;
    }
    writer.commit().await?;
    Ok(())
}
