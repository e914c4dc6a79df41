//! Checks that a workbook can be read with bounded memory before the
//! spreadsheet reader touches it. The reader (calamine) trusts what a
//! workbook declares: it reserves memory by the shared-strings count and by
//! shared-formula indexes, and inflates parts whatever their size. A file of
//! a kilobyte can declare billions. [`check_workbook`] reads the zip central
//! directory (entry sizes, compression ratios), then inflates every XML part
//! once as a stream, counting the bytes that actually come out and reading
//! the XML one event at a time with a bound on each event's size: the
//! declared counts, the sheet dimensions, the cells, the strings and the
//! nesting depth must all stay within [`WorkbookLimits`]. Only a workbook
//! that passes is given to the reader, which then sees exactly the bytes that
//! were checked.

use std::io::{self, BufReader, Read, Seek};

use quick_xml::events::{BytesStart, Event};
use zip::ZipArchive;

/// Why a workbook is refused before it is read.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The workbook is not a well-formed zip of XML parts.
    #[error("{0}")]
    Malformed(String),
    /// The workbook goes beyond one of the limits.
    #[error("{what}, beyond the limit of {limit} ({key})")]
    Limit {
        what: String,
        limit: u64,
        key: &'static str,
    },
}

/// Parts larger than this are checked against the compression ratio; small
/// parts of repetitive XML legitimately compress very well.
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;
/// Most entries a workbook may hold.
const MAX_ENTRIES: usize = 10_000;
/// Largest single XML event (a tag with its attributes, or a run of text).
/// Excel keeps a cell to 32,767 characters; escaped as XML that is well under
/// this bound.
pub const MAX_XML_EVENT_BYTES: u64 = 1024 * 1024;

/// What a workbook may hold before it is refused; each field is a
/// configuration key of the service (named in the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkbookLimits {
    /// Bytes of all parts once inflated, declared and actual
    /// (`IMPORTS_XLSX_MAX_UNCOMPRESSED_BYTES`).
    pub max_uncompressed_bytes: u64,
    /// Inflated size over compressed size of any part over 1 MiB
    /// (`IMPORTS_XLSX_MAX_COMPRESSION_RATIO`).
    pub max_compression_ratio: u64,
    /// Cells of a sheet: its declared dimension and the cells it lists
    /// (`IMPORTS_XLSX_MAX_CELLS`).
    pub max_cells: u64,
    /// Shared strings, declared (`count`, `uniqueCount`) and listed
    /// (`IMPORTS_XLSX_MAX_SHARED_STRINGS`).
    pub max_shared_strings: u64,
    /// Bytes of the shared-strings part, which the reader holds in memory
    /// (`IMPORTS_XLSX_MAX_SHARED_STRINGS_BYTES`).
    pub max_shared_strings_bytes: u64,
    /// Nesting depth of XML elements (`IMPORTS_XLSX_MAX_XML_DEPTH`).
    pub max_xml_depth: u64,
}

impl Default for WorkbookLimits {
    fn default() -> Self {
        Self {
            max_uncompressed_bytes: 1024 * 1024 * 1024,
            max_compression_ratio: 100,
            max_cells: 200_000_000,
            max_shared_strings: 5_000_000,
            max_shared_strings_bytes: 256 * 1024 * 1024,
            max_xml_depth: 64,
        }
    }
}

/// Which limit a workbook went beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    UncompressedBytes,
    CompressionRatio,
    Cells,
    SharedStrings,
    SharedStringsBytes,
    XmlDepth,
    XmlEvent,
    Entries,
}

impl Limit {
    /// The configuration key that sets the limit, or a fixed bound's name.
    pub fn key(self) -> &'static str {
        match self {
            Limit::UncompressedBytes => "IMPORTS_XLSX_MAX_UNCOMPRESSED_BYTES",
            Limit::CompressionRatio => "IMPORTS_XLSX_MAX_COMPRESSION_RATIO",
            Limit::Cells => "IMPORTS_XLSX_MAX_CELLS",
            Limit::SharedStrings => "IMPORTS_XLSX_MAX_SHARED_STRINGS",
            Limit::SharedStringsBytes => "IMPORTS_XLSX_MAX_SHARED_STRINGS_BYTES",
            Limit::XmlDepth => "IMPORTS_XLSX_MAX_XML_DEPTH",
            Limit::XmlEvent => "the fixed bound of 1 MiB per XML tag or text",
            Limit::Entries => "the fixed bound of 10000 parts per workbook",
        }
    }

    fn of(self, limits: &WorkbookLimits) -> u64 {
        match self {
            Limit::UncompressedBytes => limits.max_uncompressed_bytes,
            Limit::CompressionRatio => limits.max_compression_ratio,
            Limit::Cells => limits.max_cells,
            Limit::SharedStrings => limits.max_shared_strings,
            Limit::SharedStringsBytes => limits.max_shared_strings_bytes,
            Limit::XmlDepth => limits.max_xml_depth,
            Limit::XmlEvent => MAX_XML_EVENT_BYTES,
            Limit::Entries => MAX_ENTRIES as u64,
        }
    }
}

fn beyond(limit: Limit, limits: &WorkbookLimits, what: String) -> CheckError {
    CheckError::Limit {
        what,
        limit: limit.of(limits),
        key: limit.key(),
    }
}

/// A count past its limit, as [`beyond`]; `what` says it when it is.
fn over<T: PartialOrd>(
    count: T,
    max: T,
    limit: Limit,
    limits: &WorkbookLimits,
    what: impl FnOnce() -> String,
) -> Result<(), CheckError> {
    if count > max {
        return Err(beyond(limit, limits, what()));
    }
    Ok(())
}

/// Checks `input`, a workbook, against `limits`; see the module documentation.
/// Returns the input rewound, for the reader.
pub fn check_workbook<R: Read + Seek>(input: R, limits: &WorkbookLimits) -> Result<R, CheckError> {
    let mut zip =
        ZipArchive::new(input).map_err(|e| CheckError::Malformed(format!("not a zip: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(beyond(
            Limit::Entries,
            limits,
            format!("the workbook holds {} parts", zip.len()),
        ));
    }
    let mut declared_total: u64 = 0;
    let mut xml_parts = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(zip_error)?;
        let (name, size, packed) = (
            entry.name().map_err(zip_error)?.into_owned(),
            entry.size(),
            entry.compressed_size(),
        );
        declared_total = declared_total.saturating_add(size);
        if declared_total > limits.max_uncompressed_bytes {
            return Err(beyond(
                Limit::UncompressedBytes,
                limits,
                format!(
                    "the workbook's parts declare more than {declared_total} bytes once inflated"
                ),
            ));
        }
        if size > RATIO_FLOOR_BYTES && size / packed.max(1) > limits.max_compression_ratio {
            return Err(beyond(
                Limit::CompressionRatio,
                limits,
                format!(
                    "part {name} of the workbook inflates {packed} bytes into {size}, a ratio of {}",
                    size / packed.max(1)
                ),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".xml") || lower.ends_with(".rels") {
            xml_parts.push((i, name, size));
        }
    }
    let mut inflated: u64 = 0;
    for (i, name, size) in xml_parts {
        let entry = zip.by_index(i).map_err(zip_error)?;
        let part = Part::of(&name);
        if part == Part::SharedStrings && size > limits.max_shared_strings_bytes {
            return Err(beyond(
                Limit::SharedStringsBytes,
                limits,
                format!("the workbook's shared strings take {size} bytes"),
            ));
        }
        let counted = Counted {
            inner: entry,
            declared: size,
            read: 0,
            event: 0,
        };
        inflated += check_part(counted, &name, part, limits)?;
        if inflated > limits.max_uncompressed_bytes {
            return Err(beyond(
                Limit::UncompressedBytes,
                limits,
                format!("the workbook's parts inflate to more than {inflated} bytes"),
            ));
        }
    }
    let mut input = zip.into_inner();
    input.rewind()?;
    Ok(input)
}

fn zip_error(e: zip::result::ZipError) -> CheckError {
    match e {
        zip::result::ZipError::Io(io) => CheckError::Io(io),
        other => CheckError::Malformed(other.to_string()),
    }
}

/// The parts whose content is counted beyond depth and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    SharedStrings,
    Worksheet,
    Other,
}

impl Part {
    fn of(name: &str) -> Part {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with("sharedstrings.xml") {
            Part::SharedStrings
        } else if lower.contains("worksheets/") && !lower.contains("_rels") {
            Part::Worksheet
        } else {
            Part::Other
        }
    }
}

/// An inflating part that fails once more comes out than its entry declared,
/// and once one XML event grows past [`MAX_XML_EVENT_BYTES`].
struct Counted<R> {
    inner: R,
    declared: u64,
    read: u64,
    /// Bytes read since the last event ended.
    event: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.event > MAX_XML_EVENT_BYTES {
            return Err(io::Error::other(EventTooLarge));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.event += n as u64;
        if self.read > self.declared {
            return Err(io::Error::other(LongerThanDeclared(self.declared)));
        }
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("one XML tag or text is longer than {MAX_XML_EVENT_BYTES} bytes")]
struct EventTooLarge;

#[derive(Debug, thiserror::Error)]
#[error("a part inflates to more than the {0} bytes its entry declares")]
struct LongerThanDeclared(u64);

/// Reads one XML part as a stream of events; returns the bytes it inflated to.
fn check_part<R: Read>(
    part_bytes: Counted<R>,
    name: &str,
    part: Part,
    limits: &WorkbookLimits,
) -> Result<u64, CheckError> {
    let mut xml = quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, part_bytes));
    let mut buf = Vec::new();
    let mut counts = Counts::default();
    let mut depth: u64 = 0;
    loop {
        buf.clear();
        let event = match xml.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(e) => return Err(xml_error(e, name, limits)),
        };
        match &event {
            Event::Start(tag) => {
                depth += 1;
                if depth > limits.max_xml_depth {
                    return Err(beyond(
                        Limit::XmlDepth,
                        limits,
                        format!("part {name} of the workbook nests XML elements {depth} deep"),
                    ));
                }
                counts.element(tag, name, part, limits)?;
            }
            Event::Empty(tag) => counts.element(tag, name, part, limits)?,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::DocType(_) => {
                return Err(CheckError::Malformed(format!(
                    "part {name} declares a document type, which workbooks never do"
                )));
            }
            Event::Eof => break,
            _ => {}
        }
        let reader = xml.get_mut();
        let pending = reader.buffer().len() as u64;
        reader.get_mut().event = pending;
    }
    Ok(xml.get_ref().get_ref().read)
}

fn xml_error(e: quick_xml::Error, name: &str, limits: &WorkbookLimits) -> CheckError {
    if let quick_xml::Error::Io(io) = &e
        && let Some(inner) = io.get_ref()
    {
        if inner.is::<EventTooLarge>() {
            return beyond(
                Limit::XmlEvent,
                limits,
                format!(
                    "part {name} of the workbook has an XML tag or text longer than {MAX_XML_EVENT_BYTES} bytes"
                ),
            );
        }
        if inner.is::<LongerThanDeclared>() {
            return CheckError::Malformed(format!("part {name}: {inner}"));
        }
    }
    CheckError::Malformed(format!("part {name} is not well-formed XML: {e}"))
}

/// What a part lists, counted as it is read.
#[derive(Default)]
struct Counts {
    cells: u64,
    strings: u64,
}

impl Counts {
    fn element(
        &mut self,
        tag: &BytesStart<'_>,
        name: &str,
        part: Part,
        limits: &WorkbookLimits,
    ) -> Result<(), CheckError> {
        match (part, tag.local_name().as_ref()) {
            (Part::SharedStrings, "sst") => {
                for attr in ["count", "uniqueCount"] {
                    let declared = number_attr(tag, attr)?;
                    if declared > limits.max_shared_strings {
                        return Err(beyond(
                            Limit::SharedStrings,
                            limits,
                            format!("the workbook declares {attr}=\"{declared}\" shared strings"),
                        ));
                    }
                }
            }
            (Part::SharedStrings, "si") => {
                self.strings += 1;
                over(
                    self.strings,
                    limits.max_shared_strings,
                    Limit::SharedStrings,
                    limits,
                    || {
                        format!(
                            "the workbook lists more than {} shared strings",
                            self.strings - 1
                        )
                    },
                )?;
            }
            (Part::Worksheet, "dimension") => {
                let range = text_attr(tag, "ref")?;
                let cells = range_cells(&range);
                if cells > limits.max_cells {
                    return Err(beyond(
                        Limit::Cells,
                        limits,
                        format!(
                            "sheet part {name} declares it spans {range} ({cells} cells; a stray value far below or to the right of the data usually causes this: delete the rows and columns beyond it)"
                        ),
                    ));
                }
            }
            (Part::Worksheet, "c") => {
                self.cells += 1;
                over(self.cells, limits.max_cells, Limit::Cells, limits, || {
                    format!("sheet part {name} lists more than {} cells", self.cells - 1)
                })?;
            }
            (Part::Worksheet, "f") => {
                // The reader keeps shared formulas in a list as long as the
                // largest index; indexes are given in order, one per group.
                let index = number_attr(tag, "si")?;
                if index > self.cells {
                    return Err(CheckError::Malformed(format!(
                        "part {name} gives a shared formula index {index} after only {} cells",
                        self.cells
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn text_attr(tag: &BytesStart<'_>, attr: &str) -> Result<String, CheckError> {
    match tag.try_get_attribute(attr) {
        Ok(Some(a)) => Ok(a.value.into_owned()),
        Ok(None) => Ok(String::new()),
        Err(e) => Err(CheckError::Malformed(format!("a malformed attribute: {e}"))),
    }
}

/// A numeric attribute (0 when absent or not a number, as the reader takes it).
fn number_attr(tag: &BytesStart<'_>, attr: &str) -> Result<u64, CheckError> {
    let text = text_attr(tag, attr)?;
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(0);
    }
    // A number too long for u64 is larger than any limit.
    Ok(digits.parse().unwrap_or(u64::MAX))
}

/// Cells of an A1-style range (`A1:C10` is 30; `B2` is 1); 0 when unreadable.
fn range_cells(range: &str) -> u64 {
    let mut ends = range.split(':').map(cell_position);
    match (ends.next().flatten(), ends.next().flatten()) {
        (Some((r1, c1)), Some((r2, c2))) => r1
            .abs_diff(r2)
            .saturating_add(1)
            .saturating_mul(c1.abs_diff(c2).saturating_add(1)),
        (Some(_), None) => 1,
        _ => 0,
    }
}

/// (row, column) from 1 of a cell reference such as `XFD1048576`.
fn cell_position(cell: &str) -> Option<(u64, u64)> {
    let cell = cell.trim().replace('$', "");
    let letters = cell.bytes().take_while(u8::is_ascii_alphabetic).count();
    let (col, row) = cell.split_at(letters);
    // A reference too long for u64 is larger than any limit.
    let col = col.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(26)
            .saturating_add(u64::from(b.to_ascii_uppercase() - b'A') + 1)
    });
    if row.is_empty() || !row.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let row: u64 = row.parse().unwrap_or(u64::MAX);
    Some((row, col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_count_their_cells() {
        assert_eq!(range_cells("A1:C10"), 30);
        assert_eq!(range_cells("B2"), 1);
        assert_eq!(range_cells("A1:XFD1048576"), 16_384 * 1_048_576);
        assert_eq!(range_cells("$A$1:$B$2"), 4);
        assert_eq!(range_cells("junk"), 0);
        assert_eq!(range_cells("ZZZZZZZZZZZZZZ1:A1"), u64::MAX);
        assert_eq!(range_cells("A1:A99999999999999999999999"), u64::MAX);
        assert_eq!(range_cells("A0:A99999999999999999999999"), u64::MAX);
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A small workbook of Excel's making with one part's XML changed by `edit`.
    fn edited(
        part: &str,
        edit: impl Fn(String) -> String,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write_string(0, 0, "case_number")?;
        sheet.write_string(1, 0, "C1")?;
        let original = workbook.save_to_buffer()?;
        let mut zip = ZipArchive::new(io::Cursor::new(original))?;
        let mut out = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i)?;
            let name = entry.name()?.into_owned();
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            if name == part {
                text = edit(text);
            }
            out.start_file(name, options)?;
            io::Write::write_all(&mut out, text.as_bytes())?;
        }
        Ok(out.finish()?.into_inner())
    }

    fn checked(bytes: Vec<u8>) -> Result<(), CheckError> {
        check_workbook(io::Cursor::new(bytes), &WorkbookLimits::default()).map(|_| ())
    }

    #[test]
    fn a_workbook_of_excels_making_passes() -> TestResult {
        checked(edited("", |t| t)?)?;
        Ok(())
    }

    #[test]
    fn declared_counts_beyond_the_limits_are_refused_before_reading() -> TestResult {
        let huge = edited("xl/sharedStrings.xml", |t| {
            t.replacen("uniqueCount=\"", "uniqueCount=\"1844674407370955161", 1)
        })?;
        let err = checked(huge).err();
        assert!(
            matches!(
                &err,
                Some(CheckError::Limit {
                    key: "IMPORTS_XLSX_MAX_SHARED_STRINGS",
                    ..
                })
            ),
            "{err:?}"
        );
        let formula = edited("xl/worksheets/sheet1.xml", |t| {
            t.replacen("<sheetData>", "<sheetData><row r=\"9\"><c r=\"A9\"><f t=\"shared\" si=\"4000000000\" ref=\"A9\">1</f></c></row>", 1)
        })?;
        let err = checked(formula).err();
        assert!(
            matches!(&err, Some(CheckError::Malformed(m)) if m.contains("shared formula index")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn a_document_type_and_an_overlong_text_are_refused() -> TestResult {
        let dtd = edited("xl/workbook.xml", |t| {
            t.replacen(
                "<workbook",
                "<!DOCTYPE lol [<!ENTITY a \"aaaa\">]><workbook",
                1,
            )
        })?;
        assert!(matches!(checked(dtd), Err(CheckError::Malformed(_))));
        let long = edited("xl/sharedStrings.xml", |t| {
            t.replacen("<t>", &format!("<t>{}", "x".repeat(2 * 1024 * 1024)), 1)
        })?;
        let lenient = WorkbookLimits {
            max_compression_ratio: 100_000,
            ..WorkbookLimits::default()
        };
        let err = check_workbook(io::Cursor::new(long), &lenient).err();
        assert!(
            matches!(&err, Some(CheckError::Limit { key, .. }) if key.contains("1 MiB")),
            "{err:?}"
        );
        Ok(())
    }
}
