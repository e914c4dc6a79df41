//! Conversion of uploaded files that the scan cannot read as they are into the
//! UTF-8 delimited text it reads: text in UTF-16 or Windows-1252 is transcoded,
//! and one sheet of an XLSX workbook is written as CSV. [`sniff`] tells from a
//! file's first bytes which of these a file needs; [`transcode`] and
//! [`xlsx_to_csv`] write the UTF-8 text that [`crate::file::scan`] then reads.

use std::fmt::Write as _;
use std::io::{self, Read, Seek, Write};

use calamine::{DataRef, ExcelDateTime, Reader, SheetType, SheetVisible, Xlsx, XlsxError};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use encoding_rs_io::DecodeReaderBytesBuilder;

pub use super::workbook_limits::WorkbookLimits;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const UTF16LE_BOM: &[u8] = b"\xFF\xFE";
const UTF16BE_BOM: &[u8] = b"\xFE\xFF";

/// How the stored bytes of a text file encode its characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 without a byte-order mark.
    Utf8,
    /// UTF-8 starting with a byte-order mark, as Excel's "CSV UTF-8" writes it.
    Utf8Bom,
    /// UTF-16, low byte first, with a byte-order mark, as Excel's "Unicode Text" writes it.
    Utf16Le,
    /// UTF-16, high byte first.
    Utf16Be,
    /// Windows-1252, the "ANSI" code page of Western European and US Windows,
    /// which Excel's plain "CSV" writes there.
    Windows1252,
}

impl Encoding {
    /// The name written in logs and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf8Bom => "utf-8-sig",
            Encoding::Utf16Le => "utf-16le",
            Encoding::Utf16Be => "utf-16be",
            Encoding::Windows1252 => "windows-1252",
        }
    }

    /// Parses an encoding's name, ignoring case and surrounding spaces: the
    /// names [`Encoding::as_str`] gives, `utf8-sig`, and the labels browsers
    /// accept for these encodings (`utf8`, `utf-16`, `unicode`, `cp1252`,
    /// `latin1`, `iso-8859-1`, `ascii`, …). As in browsers, ISO-8859-1 and
    /// ASCII are read as Windows-1252, which extends both, and `utf-16` means
    /// low byte first. Any other encoding gives `None`.
    pub fn parse(name: &str) -> Option<Encoding> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("utf-8-sig") || name.eq_ignore_ascii_case("utf8-sig") {
            return Some(Encoding::Utf8Bom);
        }
        let found = encoding_rs::Encoding::for_label(name.as_bytes())?;
        if found == encoding_rs::UTF_8 {
            Some(Encoding::Utf8)
        } else if found == encoding_rs::UTF_16LE {
            Some(Encoding::Utf16Le)
        } else if found == encoding_rs::UTF_16BE {
            Some(Encoding::Utf16Be)
        } else if found == encoding_rs::WINDOWS_1252 {
            Some(Encoding::Windows1252)
        } else {
            None
        }
    }

    /// The decoder for text that is not UTF-8; `None` passes bytes through.
    fn decoder(self) -> Option<&'static encoding_rs::Encoding> {
        match self {
            Encoding::Utf8 | Encoding::Utf8Bom => None,
            Encoding::Utf16Le => Some(encoding_rs::UTF_16LE),
            Encoding::Utf16Be => Some(encoding_rs::UTF_16BE),
            Encoding::Windows1252 => Some(encoding_rs::WINDOWS_1252),
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A zip container, read as an XLSX workbook.
    Xlsx,
    /// Delimited text in this encoding.
    Text(Encoding),
}

/// Tells from `head`, the first bytes of a file (up to 64 KiB), what it is.
///
/// A file starting with the zip signature `PK\x03\x04` is an XLSX workbook.
/// Otherwise it is text: a byte-order mark decides UTF-8, UTF-16LE or
/// UTF-16BE; without one, text that is valid UTF-8 (a character cut off by the
/// end of `head` included) is UTF-8, and anything else is Windows-1252. Text
/// whose first 64 KiB are plain ASCII is taken as UTF-8; should a Windows-1252
/// character come later, the scan reports its row as not valid UTF-8. UTF-16
/// without a byte-order mark is not recognised.
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(ZIP_MAGIC) {
        return Sniffed::Xlsx;
    }
    let encoding = if head.starts_with(UTF8_BOM) {
        Encoding::Utf8Bom
    } else if head.starts_with(UTF16LE_BOM) {
        Encoding::Utf16Le
    } else if head.starts_with(UTF16BE_BOM) {
        Encoding::Utf16Be
    } else {
        match std::str::from_utf8(head) {
            Ok(_) => Encoding::Utf8,
            // `error_len` is `None` only for a sequence cut off by the end of `head`.
            Err(e) if e.error_len().is_none() => Encoding::Utf8,
            Err(_) => Encoding::Windows1252,
        }
    };
    Sniffed::Text(encoding)
}

/// Whether text in `encoding` must be converted before the scan reads it:
/// everything but UTF-8, with or without a byte-order mark.
pub fn needs_conversion(encoding: Encoding) -> bool {
    !matches!(encoding, Encoding::Utf8 | Encoding::Utf8Bom)
}

/// Why a file could not be converted. Messages are fit to show an operator.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the file could not be read, or its conversion written: {0}")]
    Io(#[from] io::Error),
    #[error(
        "the workbook cannot be read ({0}); check that it opens in Excel and save it again as .xlsx"
    )]
    Workbook(String),
    #[error("the workbook has no sheet named \"{requested}\"; its sheets are {}", quoted(.available))]
    SheetNotFound {
        requested: String,
        available: Vec<String>,
    },
    #[error("the workbook has no worksheets")]
    EmptyWorkbook,
    #[error("sheet \"{sheet}\" is empty; the workbook's sheets are {}", quoted(.sheets))]
    EmptySheet { sheet: String, sheets: Vec<String> },
    #[error(
        "the data of sheet \"{sheet}\" spans {range} ({rows} rows by {columns} columns), more than the {limit} cells the service converts (IMPORTS_XLSX_MAX_CELLS); a value far below or to the right of the data (often a stray space) usually causes this: delete the rows and columns beyond the data and save again"
    )]
    SheetTooLarge {
        limit: u64,
        sheet: String,
        /// The range in A1 notation, e.g. `A1:XFD1048576`.
        range: String,
        rows: u64,
        columns: u64,
    },
    #[error(
        "the file is refused before it is read: {what}, beyond the limit of {limit} ({key}); save the data as CSV UTF-8, or split it into smaller workbooks"
    )]
    LimitExceeded {
        /// What the file does, e.g. `the workbook declares uniqueCount="4000000000" shared strings`.
        what: String,
        limit: u64,
        /// The configuration key that sets the limit.
        key: &'static str,
    },
    #[error(
        "the converted file would be larger than {limit} bytes (IMPORTS_MAX_CONVERTED_BYTES); split the file into smaller ones"
    )]
    ConvertedTooLarge { limit: u64 },
}

impl From<super::workbook_limits::CheckError> for DecodeError {
    fn from(e: super::workbook_limits::CheckError) -> Self {
        use super::workbook_limits::CheckError;
        match e {
            CheckError::Io(io) => DecodeError::Io(io),
            CheckError::Malformed(reason) => DecodeError::Workbook(reason),
            CheckError::Limit { what, limit, key } => {
                DecodeError::LimitExceeded { what, limit, key }
            }
        }
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Transcodes text in `encoding` to UTF-8 and writes it to `out`, streaming
/// with memory that does not grow with the file. Returns the bytes written.
///
/// A byte-order mark is dropped; when one is present it decides the
/// encoding, as in browsers. UTF-8 passes through unchanged, invalid bytes
/// included, so that the scan reports them with their row. In UTF-16, a
/// malformed sequence (a lone surrogate, or an odd last byte) becomes U+FFFD
/// `�`. Every Windows-1252 byte has a character.
pub fn transcode<R: Read, W: Write>(
    input: R,
    encoding: Encoding,
    mut out: W,
) -> Result<u64, DecodeError> {
    let mut decoder = DecodeReaderBytesBuilder::new()
        .encoding(encoding.decoder())
        .bom_override(true)
        .utf8_passthru(true)
        .strip_bom(true)
        .build(input);
    let written = io::copy(&mut decoder, &mut out)?;
    out.flush()?;
    Ok(written)
}

/// A writer that takes at most `limit` bytes: past it, writing fails and
/// [`Bounded::exceeded`] tells why, so a conversion that would grow without
/// end (a short string repeated in millions of cells) stops at the limit.
pub struct Bounded<W> {
    inner: W,
    limit: u64,
    written: u64,
    exceeded: bool,
}

impl<W: Write> Bounded<W> {
    pub fn new(inner: W, limit: u64) -> Self {
        Self {
            inner,
            limit,
            written: 0,
            exceeded: false,
        }
    }

    /// Whether a write went past the limit.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Bytes written.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    /// The error of a conversion into this writer: the limit when it was
    /// reached, as it is otherwise.
    pub fn error(&self, e: DecodeError) -> DecodeError {
        if self.exceeded {
            DecodeError::ConvertedTooLarge { limit: self.limit }
        } else {
            e
        }
    }
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            self.exceeded = true;
            return Err(io::Error::other(format!(
                "the conversion is larger than {} bytes",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Outcome of converting one sheet of a workbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetConversion {
    /// The sheet's name as the workbook spells it.
    pub sheet: String,
    /// CSV records written, the header row included.
    pub rows: u64,
    /// Bytes of CSV written.
    pub bytes: u64,
}

/// Writes one sheet of an XLSX workbook to `out` as UTF-8 CSV: comma
/// separated, fields quoted where needed (RFC 4180), one `\n` after each row.
///
/// The sheet is the one named `sheet` (surrounding spaces and case ignored),
/// or without a name (or a blank one) the first visible worksheet. Hidden
/// worksheets can be chosen by name; chart sheets are never read.
///
/// Cells are written as Excel stores them, not as their number format shows
/// them: text as is; numbers in their shortest exact form, whole numbers
/// without a decimal point (`12`, `1234.56`); booleans `true`/`false`; dates
/// `YYYY-MM-DD`, date-times `YYYY-MM-DDTHH:MM:SS`, times of day `HH:MM:SS`
/// (milliseconds `.sss` added when not zero); durations (`[h]:mm:ss`) as hours,
/// minutes and seconds (`36:00:00`); error values as their text (`#N/A`,
/// `#DIV/0!`), which the value check then reports with their row; formulas as
/// their last computed value; empty cells empty. A number shown with leading
/// zeros by its format (a ZIP code formatted `00000`) loses them.
///
/// The CSV covers the sheet's data: from the first to the last row, and the
/// first to the last column, holding a cell with a value (cells holding only
/// spaces do not count). Rows and columns before the data are not written;
/// empty rows within it are, so rows keep their order and spacing. Every row
/// has the same number of fields.
///
/// The workbook's table of shared texts is held in memory; the sheet itself
/// is read twice as a stream (once to find its data, once to write it), one
/// row at a time. A sheet whose data spans more than `limits.max_cells` cells
/// is refused.
///
/// Before the workbook is read at all, it is checked against `limits`
/// ([`check_workbook`](super::workbook_limits::check_workbook)): a workbook
/// whose parts inflate or declare more than they allow is refused with
/// [`DecodeError::LimitExceeded`], naming the limit; and so is one declaring
/// more shared texts than its shared-text part has bytes (the reader would
/// reserve memory for them all).
pub fn xlsx_to_csv<R: Read + Seek, W: Write>(
    input: R,
    sheet: Option<&str>,
    limits: &WorkbookLimits,
    out: W,
) -> Result<SheetConversion, DecodeError> {
    let mut input = super::workbook_limits::check_workbook(input, limits)?;
    if let Some(over) = super::declared::check_shared_strings(&mut input)? {
        return Err(DecodeError::Workbook(format!(
            "its part {} declares {} shared texts but holds only {} bytes",
            over.part, over.declared, over.bytes
        )));
    }
    let mut workbook: Xlsx<R> = Xlsx::new(input).map_err(workbook_error)?;
    let worksheets: Vec<(String, bool)> = workbook
        .sheets_metadata()
        .iter()
        .filter(|s| s.typ == SheetType::WorkSheet)
        .map(|s| (s.name.clone(), s.visible == SheetVisible::Visible))
        .collect();
    if worksheets.is_empty() {
        return Err(DecodeError::EmptyWorkbook);
    }
    let names = || worksheets.iter().map(|(n, _)| n.clone()).collect();
    let chosen = match sheet.map(str::trim).filter(|s| !s.is_empty()) {
        Some(wanted) => {
            let wanted_lower = wanted.to_lowercase();
            worksheets
                .iter()
                .find(|(n, _)| n == wanted)
                .or_else(|| {
                    worksheets
                        .iter()
                        .find(|(n, _)| n.trim().to_lowercase() == wanted_lower)
                })
                .ok_or_else(|| DecodeError::SheetNotFound {
                    requested: wanted.to_string(),
                    available: names(),
                })?
        }
        None => worksheets
            .iter()
            .find(|(_, visible)| *visible)
            .or_else(|| worksheets.first())
            .ok_or(DecodeError::EmptyWorkbook)?,
    };
    let name = chosen.0.clone();

    let Some(used) = used_range(&mut workbook, &name)? else {
        return Err(DecodeError::EmptySheet {
            sheet: name,
            sheets: names(),
        });
    };
    let rows = u64::from(used.last_row - used.first_row) + 1;
    let columns = u64::from(used.last_col - used.first_col) + 1;
    if rows.saturating_mul(columns) > limits.max_cells {
        return Err(DecodeError::SheetTooLarge {
            limit: limits.max_cells,
            sheet: name,
            range: format!(
                "{}{}:{}{}",
                column_name(used.first_col),
                u64::from(used.first_row) + 1,
                column_name(used.last_col),
                u64::from(used.last_row) + 1
            ),
            rows,
            columns,
        });
    }

    let (rows, bytes) = write_sheet(&mut workbook, &name, &used, out)?;
    Ok(SheetConversion {
        sheet: name,
        rows,
        bytes,
    })
}

fn workbook_error(e: XlsxError) -> DecodeError {
    match e {
        XlsxError::Io(io) => DecodeError::Io(io),
        other => DecodeError::Workbook(other.to_string()),
    }
}

/// Rows and columns (from 0) of the cells holding a value.
struct UsedRange {
    first_row: u32,
    last_row: u32,
    first_col: u32,
    last_col: u32,
}

/// First pass: where the sheet's values are.
fn used_range<R: Read + Seek>(
    workbook: &mut Xlsx<R>,
    sheet: &str,
) -> Result<Option<UsedRange>, DecodeError> {
    let mut cells = workbook
        .worksheet_cells_reader(sheet)
        .map_err(workbook_error)?;
    let mut used: Option<UsedRange> = None;
    let mut previous_row = 0;
    while let Some(cell) = cells.next_cell().map_err(workbook_error)? {
        let (row, col) = cell.get_position();
        if row < previous_row {
            return Err(DecodeError::Workbook(format!(
                "sheet \"{sheet}\" lists row {} after row {}",
                u64::from(row) + 1,
                u64::from(previous_row) + 1
            )));
        }
        previous_row = row;
        if is_blank(cell.get_value()) {
            continue;
        }
        match &mut used {
            None => {
                used = Some(UsedRange {
                    first_row: row,
                    last_row: row,
                    first_col: col,
                    last_col: col,
                })
            }
            Some(u) => {
                u.last_row = row;
                u.first_col = u.first_col.min(col);
                u.last_col = u.last_col.max(col);
            }
        }
    }
    Ok(used)
}

/// Second pass: writes the used range row by row. Returns rows and bytes written.
fn write_sheet<R: Read + Seek, W: Write>(
    workbook: &mut Xlsx<R>,
    sheet: &str,
    used: &UsedRange,
    out: W,
) -> Result<(u64, u64), DecodeError> {
    let mut writer = csv::WriterBuilder::new().from_writer(Counted {
        inner: out,
        bytes: 0,
    });
    let width = (used.last_col - used.first_col) as usize + 1;
    let mut record = vec![String::new(); width];
    // The row `record` holds.
    let mut row = used.first_row;

    let mut cells = workbook
        .worksheet_cells_reader(sheet)
        .map_err(workbook_error)?;
    while let Some(cell) = cells.next_cell().map_err(workbook_error)? {
        let (r, c) = cell.get_position();
        if r > used.last_row {
            break;
        }
        if r < used.first_row || c < used.first_col || c > used.last_col {
            continue;
        }
        while row < r {
            write_record(&mut writer, &mut record)?;
            row += 1;
        }
        if let Some(field) = record.get_mut((c - used.first_col) as usize) {
            field.clear();
            write_value(cell.get_value(), field);
        }
    }
    loop {
        write_record(&mut writer, &mut record)?;
        if row >= used.last_row {
            break;
        }
        row += 1;
    }

    let mut counted = writer.into_inner().map_err(|e| e.into_error())?;
    counted.flush()?;
    let rows = u64::from(used.last_row - used.first_row) + 1;
    Ok((rows, counted.bytes))
}

/// Writes `record` and empties its fields for the next row.
fn write_record<W: Write>(
    writer: &mut csv::Writer<W>,
    record: &mut [String],
) -> Result<(), DecodeError> {
    writer.write_record(&*record).map_err(io::Error::from)?;
    record.iter_mut().for_each(String::clear);
    Ok(())
}

/// Counts the bytes written through it.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A cell that shows nothing: it does not widen the range that is written.
fn is_blank(value: &DataRef<'_>) -> bool {
    match value {
        DataRef::Empty => true,
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => {
            s.trim().is_empty()
        }
        DataRef::SharedString(s) => s.trim().is_empty(),
        DataRef::Int(_)
        | DataRef::Float(_)
        | DataRef::Bool(_)
        | DataRef::DateTime(_)
        | DataRef::Error(_) => false,
    }
}

/// Writes a cell's value as its CSV field holds it.
fn write_value(value: &DataRef<'_>, out: &mut String) {
    match value {
        DataRef::Empty => {}
        DataRef::String(s) | DataRef::DurationIso(s) => out.push_str(s),
        DataRef::SharedString(s) => out.push_str(s),
        DataRef::Int(i) => {
            let _ = write!(out, "{i}");
        }
        DataRef::Float(f) => write_number(*f, out),
        DataRef::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        DataRef::DateTime(dt) => write_excel_datetime(dt, out),
        DataRef::DateTimeIso(s) => write_iso_datetime(s, out),
        DataRef::Error(e) => {
            let _ = write!(out, "{e}");
        }
    }
}

/// Shortest text that reads back as the same number; never an exponent, and
/// no `.0` on whole numbers.
fn write_number(f: f64, out: &mut String) {
    if f == 0.0 {
        // Also -0.0, which would print as "-0".
        out.push('0');
    } else {
        let _ = write!(out, "{f}");
    }
}

/// A date/time cell: Excel stores days since its epoch, the time of day as
/// the fraction.
fn write_excel_datetime(dt: &ExcelDateTime, out: &mut String) {
    let serial = dt.as_f64();
    if dt.is_duration() {
        write_duration(serial, out);
        return;
    }
    if serial.is_nan() || serial < 0.0 {
        // Excel cannot show it as a date either.
        write_number(serial, out);
        return;
    }
    let (year, month, day, hour, minute, second, milli) = dt.to_ymd_hms_milli();
    // Day 0 is no date (Excel's "1900-01-00"): the cell holds a time of day.
    let date = (serial >= 1.0).then_some((i32::from(year), u32::from(month), u32::from(day)));
    let time = (
        u32::from(hour),
        u32::from(minute),
        u32::from(second),
        u32::from(milli),
    );
    write_datetime(date, time, out);
}

/// `[h]:mm:ss` durations: hours, minutes and seconds, hours past 24 kept.
fn write_duration(days: f64, out: &mut String) {
    // Saturating cast; NaN becomes 0.
    let total_ms = (days.abs() * 86_400_000.0).round() as u64;
    if days < 0.0 && total_ms > 0 {
        out.push('-');
    }
    let hours = total_ms / 3_600_000;
    let minutes = total_ms / 60_000 % 60;
    let seconds = total_ms / 1000 % 60;
    let _ = write!(out, "{hours:02}:{minutes:02}:{seconds:02}");
    let milli = total_ms % 1000;
    if milli > 0 {
        let _ = write!(out, ".{milli:03}");
    }
}

/// A date/time stored as ISO 8601 text (cells of type `d`): rewritten in the
/// same forms as other dates, or kept as is when it is not a plain local
/// date, time or date-time.
fn write_iso_datetime(text: &str, out: &mut String) {
    let t = text.trim();
    let ms = |time: &NaiveTime| (time.nanosecond() / 1_000_000).min(999);
    let hms = |time: &NaiveTime| (time.hour(), time.minute(), time.second(), ms(time));
    if let Ok(dt) = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
        let date = Some((dt.year(), dt.month(), dt.day()));
        write_datetime(date, hms(&dt.time()), out);
    } else if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        write_datetime(Some((d.year(), d.month(), d.day())), (0, 0, 0, 0), out);
    } else if let Ok(time) = NaiveTime::parse_from_str(t, "%H:%M:%S%.f") {
        write_datetime(None, hms(&time), out);
    } else {
        out.push_str(text);
    }
}

/// `YYYY-MM-DD` for a date at midnight, `HH:MM:SS` for a time alone, else
/// `YYYY-MM-DDTHH:MM:SS`; `.sss` added when there are milliseconds.
fn write_datetime(
    date: Option<(i32, u32, u32)>,
    (hour, minute, second, milli): (u32, u32, u32, u32),
    out: &mut String,
) {
    let midnight = (hour, minute, second, milli) == (0, 0, 0, 0);
    if let Some((year, month, day)) = date {
        let _ = write!(out, "{year:04}-{month:02}-{day:02}");
        if midnight {
            return;
        }
        out.push('T');
    }
    let _ = write!(out, "{hour:02}:{minute:02}:{second:02}");
    if milli > 0 {
        let _ = write!(out, ".{milli:03}");
    }
}

/// Column letters of a column counted from 0: 0 → `A`, 26 → `AA`.
fn column_name(col: u32) -> String {
    let mut letters = Vec::new();
    let mut n = u64::from(col) + 1;
    while n > 0 {
        n -= 1;
        letters.push(char::from(b'A' + (n % 26) as u8));
        n /= 26;
    }
    letters.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: crate::file::scan::ScanOptions<'static> = crate::file::scan::ScanOptions {
        provided: &[],
        explicit: &[],
        delimiter: None,
        chunk_rows: 10,
    };
    use std::error::Error;
    use std::io::Cursor;

    use rust_xlsxwriter::{ExcelDateTime as XlDateTime, Format, Formula, Workbook};

    type TestResult = Result<(), Box<dyn Error>>;

    #[test]
    fn sniff_tells_workbooks_and_encodings_apart() {
        assert_eq!(sniff(b"PK\x03\x04\x14\x00rest"), Sniffed::Xlsx);
        assert_eq!(
            sniff(b"\xEF\xBB\xBFname\nZo\xC3\xAB\n"),
            Sniffed::Text(Encoding::Utf8Bom)
        );
        assert_eq!(
            sniff(b"\xFF\xFEn\x00a\x00"),
            Sniffed::Text(Encoding::Utf16Le)
        );
        assert_eq!(
            sniff(b"\xFE\xFF\x00n\x00a"),
            Sniffed::Text(Encoding::Utf16Be)
        );
        assert_eq!(sniff(b"name\nAnn\n"), Sniffed::Text(Encoding::Utf8));
        assert_eq!(sniff(b""), Sniffed::Text(Encoding::Utf8));
        assert_eq!(
            sniff("name\nZoë — Café\n".as_bytes()),
            Sniffed::Text(Encoding::Utf8)
        );
        // "—" is three bytes; the head ends after the first two.
        assert_eq!(sniff(b"name\nAnn \xE2\x80"), Sniffed::Text(Encoding::Utf8));
        assert_eq!(
            sniff(b"name\nCaf\xE9\n"),
            Sniffed::Text(Encoding::Windows1252)
        );
        // A cut-off sequence is only forgiven at the very end.
        assert_eq!(sniff(b"Caf\xC3,x"), Sniffed::Text(Encoding::Windows1252));
        assert_eq!(sniff(b"a\x97b"), Sniffed::Text(Encoding::Windows1252));
    }

    #[test]
    fn encoding_names_round_trip_and_common_labels_parse() {
        for e in [
            Encoding::Utf8,
            Encoding::Utf8Bom,
            Encoding::Utf16Le,
            Encoding::Utf16Be,
            Encoding::Windows1252,
        ] {
            assert_eq!(Encoding::parse(e.as_str()), Some(e));
            assert_eq!(Encoding::parse(&e.as_str().to_uppercase()), Some(e));
            assert_eq!(e.to_string(), e.as_str());
        }
        for (label, e) in [
            ("utf8", Encoding::Utf8),
            (" UTF-8 ", Encoding::Utf8),
            ("UTF8-SIG", Encoding::Utf8Bom),
            ("utf-16", Encoding::Utf16Le),
            ("unicode", Encoding::Utf16Le),
            ("UTF-16BE", Encoding::Utf16Be),
            ("cp1252", Encoding::Windows1252),
            ("Latin1", Encoding::Windows1252),
            ("iso-8859-1", Encoding::Windows1252),
            ("us-ascii", Encoding::Windows1252),
        ] {
            assert_eq!(Encoding::parse(label), Some(e), "{label}");
        }
        assert_eq!(Encoding::parse("shift_jis"), None);
        assert_eq!(Encoding::parse("ebcdic"), None);
        assert_eq!(Encoding::parse(""), None);
    }

    #[test]
    fn only_utf8_passes_without_conversion() {
        assert!(!needs_conversion(Encoding::Utf8));
        assert!(!needs_conversion(Encoding::Utf8Bom));
        assert!(needs_conversion(Encoding::Utf16Le));
        assert!(needs_conversion(Encoding::Utf16Be));
        assert!(needs_conversion(Encoding::Windows1252));
    }

    fn transcoded(input: &[u8], encoding: Encoding) -> Result<String, Box<dyn Error>> {
        let mut out = Vec::new();
        let written = transcode(input, encoding, &mut out)?;
        assert_eq!(written, out.len() as u64);
        Ok(String::from_utf8(out)?)
    }

    const TEXT: &str = "name,note\r\nZoë,Café — \"ok\"\r\n李,😀\r\n";

    #[test]
    fn utf16_with_a_bom_becomes_utf8_without_it() -> TestResult {
        let mut le = UTF16LE_BOM.to_vec();
        let mut be = UTF16BE_BOM.to_vec();
        for unit in TEXT.encode_utf16() {
            le.extend(unit.to_le_bytes());
            be.extend(unit.to_be_bytes());
        }
        assert_eq!(sniff(&le), Sniffed::Text(Encoding::Utf16Le));
        assert_eq!(sniff(&be), Sniffed::Text(Encoding::Utf16Be));
        assert_eq!(transcoded(&le, Encoding::Utf16Le)?, TEXT);
        assert_eq!(transcoded(&be, Encoding::Utf16Be)?, TEXT);
        // A lone surrogate and an odd last byte become U+FFFD.
        assert_eq!(
            transcoded(b"\xFF\xFEa\x00\x00\xD8b\x00c", Encoding::Utf16Le)?,
            "a\u{FFFD}b\u{FFFD}"
        );
        Ok(())
    }

    #[test]
    fn windows_1252_becomes_utf8() -> TestResult {
        let input = b"name,note\r\nZo\xEB,Caf\xE9 \x97 \x80 5\r\n";
        assert_eq!(sniff(input), Sniffed::Text(Encoding::Windows1252));
        assert_eq!(
            transcoded(input, Encoding::Windows1252)?,
            "name,note\r\nZoë,Café — € 5\r\n"
        );
        Ok(())
    }

    #[test]
    fn utf8_passes_through_without_its_bom() -> TestResult {
        let mut with_bom = UTF8_BOM.to_vec();
        with_bom.extend_from_slice(TEXT.as_bytes());
        assert_eq!(transcoded(&with_bom, Encoding::Utf8Bom)?, TEXT);
        // Invalid bytes are left for the scan to report with their row.
        let mut out = Vec::new();
        transcode(&b"a,Caf\xE9\n"[..], Encoding::Utf8, &mut out)?;
        assert_eq!(out, b"a,Caf\xE9\n");
        Ok(())
    }

    #[test]
    fn transcoding_streams_across_buffer_boundaries() -> TestResult {
        let line = "Zoë,Café — 😀\n";
        let text = line.repeat(20_000);
        let mut le = UTF16LE_BOM.to_vec();
        for unit in text.encode_utf16() {
            le.extend(unit.to_le_bytes());
        }
        let mut cp1252 = Vec::new();
        for _ in 0..20_000 {
            cp1252.extend_from_slice(b"Zo\xEB,Caf\xE9 \x97\n");
        }
        assert_eq!(transcoded(&le, Encoding::Utf16Le)?, text);
        assert_eq!(
            transcoded(&cp1252, Encoding::Windows1252)?,
            "Zoë,Café —\n".repeat(20_000)
        );
        Ok(())
    }

    /// "Clients": every kind of cell. "Payments": data starting at B3 with an
    /// empty row inside and formatted empty cells after it.
    fn workbook() -> Result<Vec<u8>, Box<dyn Error>> {
        let mut workbook = Workbook::new();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let date_time = Format::new().set_num_format("yyyy-mm-dd hh:mm");
        let time = Format::new().set_num_format("hh:mm");
        let duration = Format::new().set_num_format("[h]:mm:ss");
        let money = Format::new().set_num_format("#,##0.00");

        let clients = workbook.add_worksheet();
        clients.set_name("Clients")?;
        let header = [
            "case_number",
            "name",
            "note",
            "amount",
            "price",
            "date_of_death",
            "service_at",
            "veteran",
            "middle_name",
            "check",
            "start",
            "hours",
        ];
        for (col, h) in header.iter().enumerate() {
            clients.write_string(0, col as u16, *h)?;
        }
        clients.write_string(1, 0, "C1")?;
        clients.write_string(1, 1, "Lee, Ann")?;
        clients.write_string(1, 2, "said \"hi\"\nthen left")?;
        clients.write_number(1, 3, 12.0)?;
        clients.write_number_with_format(1, 4, 1234.56, &money)?;
        clients.write_datetime_with_format(1, 5, XlDateTime::from_ymd(2024, 3, 5)?, &date)?;
        clients.write_datetime_with_format(
            1,
            6,
            XlDateTime::from_ymd(2024, 3, 5)?.and_hms(14, 30, 0)?,
            &date_time,
        )?;
        clients.write_boolean(1, 7, true)?;
        // (1, 8) stays empty.
        clients.write_formula(1, 9, Formula::new("=NA()").set_result("#N/A"))?;
        clients.write_datetime_with_format(1, 10, XlDateTime::from_hms(9, 15, 0)?, &time)?;
        clients.write_number_with_format(1, 11, 1.5, &duration)?;

        clients.write_string(2, 0, "C2")?;
        clients.write_string(2, 1, "Zoë")?;
        clients.write_string(2, 2, "  padded  ")?;
        clients.write_number(2, 3, -3.0)?;
        clients.write_number(2, 4, 0.1)?;
        clients.write_datetime_with_format(2, 5, XlDateTime::from_ymd(1999, 12, 31)?, &date)?;
        clients.write_datetime_with_format(
            2,
            6,
            XlDateTime::from_ymd(2000, 1, 1)?.and_hms(0, 0, 1)?,
            &date_time,
        )?;
        clients.write_boolean(2, 7, false)?;
        clients.write_blank(2, 8, &money)?;
        clients.write_formula(2, 9, Formula::new("=1/0").set_result("#DIV/0!"))?;
        clients.write_number(2, 10, 12345678901.0)?;
        clients.write_number_with_format(2, 11, 0.25, &duration)?;

        let payments = workbook.add_worksheet();
        payments.set_name("Payments")?;
        payments.write_string(2, 1, "payment_id")?;
        payments.write_string(2, 2, "amount")?;
        payments.write_string(3, 1, "P1")?;
        payments.write_number(3, 2, 100.0)?;
        payments.write_string(5, 1, "P2")?;
        payments.write_number(5, 2, 99.95)?;
        payments.write_blank(6, 1, &money)?;
        payments.write_blank(9, 5, &money)?;
        payments.write_string(8, 2, "   ")?;

        workbook.add_worksheet().set_name("Empty")?;
        Ok(workbook.save_to_buffer()?)
    }

    fn convert(xlsx: &[u8], sheet: Option<&str>) -> Result<(SheetConversion, String), DecodeError> {
        let mut out = Vec::new();
        let done = xlsx_to_csv(
            Cursor::new(xlsx),
            sheet,
            &WorkbookLimits::default(),
            &mut out,
        )?;
        assert_eq!(done.bytes, out.len() as u64);
        Ok((done, String::from_utf8_lossy(&out).into_owned()))
    }

    #[test]
    fn the_first_sheet_is_written_as_excel_stores_its_cells() -> TestResult {
        let xlsx = workbook()?;
        assert_eq!(sniff(&xlsx), Sniffed::Xlsx);
        let (done, csv) = convert(&xlsx, None)?;
        assert_eq!(
            csv,
            "case_number,name,note,amount,price,date_of_death,service_at,veteran,middle_name,check,start,hours\n\
             C1,\"Lee, Ann\",\"said \"\"hi\"\"\nthen left\",12,1234.56,2024-03-05,2024-03-05T14:30:00,true,,#N/A,09:15:00,36:00:00\n\
             C2,Zoë,  padded  ,-3,0.1,1999-12-31,2000-01-01T00:00:01,false,,#DIV/0!,12345678901,06:00:00\n"
        );
        assert_eq!(
            done,
            SheetConversion {
                sheet: "Clients".into(),
                rows: 3,
                bytes: csv.len() as u64,
            }
        );
        Ok(())
    }

    #[test]
    fn a_sheet_chosen_by_name_keeps_its_row_spacing() -> TestResult {
        let xlsx = workbook()?;
        let (done, csv) = convert(&xlsx, Some("  pAYMENTS "))?;
        assert_eq!(done.sheet, "Payments");
        assert_eq!(done.rows, 4);
        assert_eq!(csv, "payment_id,amount\nP1,100\n,\nP2,99.95\n");
        Ok(())
    }

    #[test]
    fn a_missing_or_empty_sheet_names_the_sheets_there_are() -> TestResult {
        let xlsx = workbook()?;
        let err = convert(&xlsx, Some("Invoices")).err();
        let Some(DecodeError::SheetNotFound {
            requested,
            available,
        }) = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(requested, "Invoices");
        assert_eq!(available, &["Clients", "Payments", "Empty"]);
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            message,
            "the workbook has no sheet named \"Invoices\"; its sheets are \"Clients\", \"Payments\", \"Empty\""
        );

        let err = convert(&xlsx, Some("empty")).err();
        assert!(
            matches!(&err, Some(DecodeError::EmptySheet { sheet, .. }) if sheet == "Empty"),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn hidden_sheets_are_passed_over_unless_named() -> TestResult {
        let mut workbook = Workbook::new();
        let lookup = workbook.add_worksheet();
        lookup.set_name("Lookup")?.write_string(0, 0, "code")?;
        lookup.set_hidden(true);
        workbook
            .add_worksheet()
            .set_name("Data")?
            .write_string(0, 0, "case_number")?;
        workbook.worksheet_from_index(1)?.set_active(true);
        let xlsx = workbook.save_to_buffer()?;
        assert_eq!(convert(&xlsx, None)?.1, "case_number\n");
        assert_eq!(convert(&xlsx, Some("lookup"))?.1, "code\n");
        Ok(())
    }

    #[test]
    fn a_stray_cell_far_from_the_data_is_refused_with_the_range() -> TestResult {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write_string(0, 0, "case_number")?;
        sheet.write_string(1_048_575, 16_383, "x")?;
        let xlsx = workbook.save_to_buffer()?;
        let err = convert(&xlsx, None).err();
        // Refused from the sheet's declared dimension, before any cell is read.
        assert!(
            matches!(&err, Some(DecodeError::LimitExceeded { what, key: "IMPORTS_XLSX_MAX_CELLS", limit: 200_000_000 }) if what.contains("A1:XFD1048576 (17179869184 cells")),
            "{err:?}"
        );
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("stray value"), "{message}");
        Ok(())
    }

    /// The abort of issue 10, stored as a `workbook` fuzz input
    /// (`shared-strings-declared-count`): a declared count of shared texts
    /// made the reader reserve memory for trillions of them, and the failed
    /// allocation aborted the process.
    #[test]
    fn a_workbook_declaring_more_shared_texts_than_it_holds_is_refused() -> TestResult {
        let mut workbook = Workbook::new();
        workbook.add_worksheet().write_string(0, 0, "case_number")?;
        let xlsx = workbook.save_to_buffer()?;
        let mut archive = zip::ZipArchive::new(Cursor::new(&xlsx))?;
        let mut rewritten = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..archive.len() {
            let mut part = archive.by_index(i)?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut part, &mut bytes)?;
            let name = part.name()?.into_owned();
            if name == "xl/sharedStrings.xml" {
                let text = String::from_utf8(bytes)?;
                bytes = text
                    .replace("uniqueCount=\"1\"", "uniqueCount=\"4000000000000\"")
                    .into_bytes();
            }
            rewritten.start_file(name, zip::write::SimpleFileOptions::default())?;
            rewritten.write_all(&bytes)?;
        }
        let hostile = rewritten.finish()?.into_inner();
        let message = convert(&hostile, None).err().map(|e| e.to_string());
        assert!(
            // Refused by the workbook limits (IMPORTS_XLSX_MAX_SHARED_STRINGS)
            // before the check of declared texts against the part's bytes.
            message
                .as_deref()
                .is_some_and(|m| m.contains("4000000000000") || m.contains("shared")),
            "{message:?}"
        );
        // The same workbook as written converts.
        assert_eq!(convert(&xlsx, None)?.1, "case_number\n");
        Ok(())
    }

    #[test]
    fn a_broken_workbook_is_reported() {
        let err = convert(b"PK\x03\x04 not really a zip", None).err();
        assert!(matches!(err, Some(DecodeError::Workbook(_))), "{err:?}");
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("the workbook cannot be read ("),
            "{message}"
        );
    }

    #[test]
    fn converted_files_pass_the_scan() -> TestResult {
        use crate::catalog::CASES;
        use crate::file::scan::scan;

        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        for (col, h) in ["case_number", "deceased_first_name", "deceased_last_name"]
            .iter()
            .enumerate()
        {
            sheet.write_string(0, col as u16, *h)?;
        }
        sheet.write_number(1, 0, 1001.0)?;
        sheet.write_string(1, 1, "Zoë")?;
        sheet.write_string(1, 2, "O'Brien, Jr.")?;
        sheet.write_number(2, 0, 1002.0)?;
        sheet.write_string(2, 1, "Ann\nMarie")?;
        sheet.write_string(2, 2, "Lee")?;
        let mut csv = Vec::new();
        xlsx_to_csv(
            Cursor::new(workbook.save_to_buffer()?),
            None,
            &WorkbookLimits::default(),
            &mut csv,
        )?;
        let report = scan(&csv[..], &CASES, &OPTIONS)?;
        assert!(report.is_valid(), "{:?}", report.problems);
        assert_eq!(report.row_count, 2);

        let text = "case_number\tdeceased_first_name\tdeceased_last_name\r\n1001\tZoë\tLee\r\n";
        let mut utf16 = UTF16LE_BOM.to_vec();
        for unit in text.encode_utf16() {
            utf16.extend(unit.to_le_bytes());
        }
        let Sniffed::Text(encoding) = sniff(&utf16) else {
            panic!("not text");
        };
        assert!(needs_conversion(encoding));
        let mut utf8 = Vec::new();
        transcode(&utf16[..], encoding, &mut utf8)?;
        let report = scan(&utf8[..], &CASES, &OPTIONS)?;
        assert!(report.is_valid(), "{:?}", report.problems);
        assert_eq!(report.row_count, 1);
        Ok(())
    }

    fn rendered(value: DataRef<'_>) -> String {
        let mut out = String::new();
        write_value(&value, &mut out);
        out
    }

    #[test]
    fn cell_values_render_as_stored() {
        use calamine::{CellErrorType, ExcelDateTimeType};
        let dt =
            |v: f64| DataRef::DateTime(ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false));
        let dur =
            |v: f64| DataRef::DateTime(ExcelDateTime::new(v, ExcelDateTimeType::TimeDelta, false));
        assert_eq!(rendered(DataRef::Float(12.0)), "12");
        assert_eq!(rendered(DataRef::Float(-0.0)), "0");
        assert_eq!(rendered(DataRef::Float(1234.56)), "1234.56");
        assert_eq!(rendered(DataRef::Float(1e-7)), "0.0000001");
        assert_eq!(rendered(DataRef::Float(1e16)), "10000000000000000");
        assert_eq!(rendered(DataRef::Int(-7)), "-7");
        assert_eq!(rendered(DataRef::Bool(true)), "true");
        assert_eq!(rendered(DataRef::Error(CellErrorType::Value)), "#VALUE!");
        assert_eq!(rendered(DataRef::Empty), "");
        assert_eq!(rendered(dt(45356.0)), "2024-03-05");
        assert_eq!(rendered(dt(45356.604166666664)), "2024-03-05T14:30:00");
        assert_eq!(
            rendered(dt(45356.5 + 0.123 / 86_400.0)),
            "2024-03-05T12:00:00.123"
        );
        assert_eq!(rendered(dt(0.75)), "18:00:00");
        assert_eq!(rendered(dt(-1.0)), "-1");
        assert_eq!(rendered(dur(1.5)), "36:00:00");
        assert_eq!(rendered(dur(-0.5)), "-12:00:00");
        for (iso, shown) in [
            ("2024-03-05T00:00:00", "2024-03-05"),
            ("2024-03-05", "2024-03-05"),
            ("2024-03-05T14:30:00.5", "2024-03-05T14:30:00.500"),
            ("14:30:00", "14:30:00"),
            ("2024-03-05T14:30:00Z", "2024-03-05T14:30:00Z"),
        ] {
            assert_eq!(rendered(DataRef::DateTimeIso(iso.into())), shown, "{iso}");
        }
        assert_eq!(rendered(DataRef::DurationIso("PT1H30M".into())), "PT1H30M");
    }

    #[test]
    fn column_names_follow_excel() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(701), "ZZ");
        assert_eq!(column_name(702), "AAA");
        assert_eq!(column_name(16_383), "XFD");
    }
}
