//! Result files of an import, as people open them in a spreadsheet: the raw
//! records of a chunk with the row numbers the pipeline gives them, and CSV
//! output in which no cell can run as a formula.

use std::borrow::Cow;

use csv::{ByteRecord, ReaderBuilder, WriterBuilder};

use crate::file::scan::is_blank;

/// The records of a chunk's bytes with their row numbers — counted from
/// `first_row` as the parser counts them (a blank record keeps its number
/// but carries no row), or taken from `row_numbers` (a retry's records).
pub fn numbered_records(
    bytes: &[u8],
    delimiter: u8,
    first_row: u64,
    row_numbers: Option<&[u64]>,
) -> Result<Vec<(u64, Vec<String>)>, csv::Error> {
    let mut reader = ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = ByteRecord::new();
    let mut out = Vec::new();
    let (mut row, mut index) = (first_row, 0usize);
    while reader.read_byte_record(&mut record)? {
        let this = match row_numbers {
            Some(numbers) => numbers.get(index).copied().unwrap_or(row),
            None => row,
        };
        row += 1;
        index += 1;
        if is_blank(&record) {
            continue;
        }
        out.push((
            this,
            record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect(),
        ));
    }
    Ok(out)
}

/// First characters that make a spreadsheet read a cell as a formula or a
/// command (OWASP's list: `=`, `+`, `-`, `@`, tab, carriage return, line
/// feed), with the full-width forms `＝＋－＠` that Excel and LibreOffice also
/// take for them.
const FORMULA_STARTS: [char; 11] = [
    '=', '+', '-', '@', '\t', '\r', '\n', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// Whether [`neutralize`] puts an apostrophe before `cell`: a cell a
/// spreadsheet would run, or one that already starts with apostrophes before
/// such a cell (so that [`restore`] can tell the apostrophe the service added
/// from the ones the value has).
fn needs_apostrophe(cell: &str) -> bool {
    cell.trim_start_matches('\'').starts_with(FORMULA_STARTS)
}

/// A cell a spreadsheet would read as a formula (first character one of
/// `= + - @`, tab, carriage return, line feed, or full-width `＝＋－＠`) gets a
/// leading apostrophe, so it is shown as the text it is and never run
/// (OWASP's advice against CSV injection). A value that already starts with
/// apostrophes before such a character gets one more, so the round trip
/// through [`restore`] gives back every value exactly.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    if needs_apostrophe(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Undoes [`neutralize`] on a cell of a file coming back (a corrected
/// failed-rows download): only the apostrophe the service added is taken
/// off; an apostrophe a value of the file had stays.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_apostrophe(rest) => rest,
        _ => cell,
    }
}

/// A CSV being written for download, every cell neutralised; its bytes are
/// taken as they accumulate, so a large file streams.
pub struct SafeCsv {
    writer: csv::Writer<Vec<u8>>,
}

impl Default for SafeCsv {
    fn default() -> Self {
        Self::new()
    }
}

impl SafeCsv {
    pub fn new() -> Self {
        Self {
            writer: Self::writer(),
        }
    }

    fn writer() -> csv::Writer<Vec<u8>> {
        WriterBuilder::new()
            .flexible(true)
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new())
    }

    pub fn record<I, S>(&mut self, cells: I) -> Result<(), csv::Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.writer.write_record(
            cells
                .into_iter()
                .map(|c| neutralize(c.as_ref()).into_owned()),
        )
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.writer.get_ref().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the bytes written so far.
    pub fn take(&mut self) -> Result<Vec<u8>, csv::Error> {
        let full = std::mem::replace(&mut self.writer, Self::writer());
        full.into_inner().map_err(|e| e.into_error().into())
    }
}

/// A file of records to load again (a retry), written as the original was
/// read (same delimiter, no neutralising), with the byte range of every
/// `chunk_rows` records after the header.
pub struct RecordFile {
    writer: csv::Writer<Vec<u8>>,
    chunk_rows: u64,
    /// (first byte, records) of the chunk being written.
    current: (u64, u64),
    chunks: Vec<crate::ChunkRange>,
}

impl RecordFile {
    pub fn new(delimiter: u8, header: &[String], chunk_rows: u64) -> Result<Self, csv::Error> {
        let mut writer = WriterBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_writer(Vec::new());
        writer.write_record(header)?;
        writer.flush()?;
        let start = writer.get_ref().len() as u64;
        Ok(Self {
            writer,
            chunk_rows: chunk_rows.max(1),
            current: (start, 0),
            chunks: Vec::new(),
        })
    }

    pub fn record(&mut self, cells: &[String]) -> Result<(), csv::Error> {
        self.writer.write_record(cells)?;
        self.current.1 += 1;
        if self.current.1 == self.chunk_rows {
            self.close_chunk()?;
        }
        Ok(())
    }

    fn close_chunk(&mut self) -> Result<(), csv::Error> {
        if self.current.1 == 0 {
            return Ok(());
        }
        self.writer.flush()?;
        let end = self.writer.get_ref().len() as u64;
        self.chunks.push(crate::ChunkRange {
            seq: self.chunks.len() as u32,
            first_row: 0,
            rows: self.current.1,
            start: self.current.0,
            end,
        });
        self.current = (end, 0);
        Ok(())
    }

    /// The file's bytes and the byte range of each chunk.
    pub fn finish(mut self) -> Result<(Vec<u8>, Vec<crate::ChunkRange>), csv::Error> {
        self.close_chunk()?;
        let bytes = self
            .writer
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?;
        Ok((bytes, self.chunks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_would_run_as_formulas_are_neutralised() {
        for (cell, shown) in [
            ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
            ("+1", "'+1"),
            ("-12.00", "'-12.00"),
            ("@cmd", "'@cmd"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("\n=1+1", "'\n=1+1"),
            ("\u{FF1D}1+1", "'\u{FF1D}1+1"),
            ("\u{FF0B}1", "'\u{FF0B}1"),
            ("\u{FF0D}1", "'\u{FF0D}1"),
            ("\u{FF20}SUM(1)", "'\u{FF20}SUM(1)"),
            ("'=already quoted", "''=already quoted"),
            ("''+2", "'''+2"),
            ("Mary", "Mary"),
            ("O'Brien", "O'Brien"),
            ("'tis", "'tis"),
            ("'", "'"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralize(cell), shown, "{cell:?}");
            assert_eq!(restore(&neutralize(cell)), cell, "{cell:?}");
        }
        let mut csv = SafeCsv::new();
        csv.record(["row", "name"]).unwrap_or_default();
        csv.record(["7", "=HYPERLINK(\"x\")"]).unwrap_or_default();
        let text = String::from_utf8(csv.take().unwrap_or_default()).unwrap_or_default();
        assert_eq!(text, "row,name\r\n7,\"'=HYPERLINK(\"\"x\"\")\"\r\n");
    }

    #[test]
    fn restoring_takes_off_only_the_apostrophe_the_service_added() {
        // Values a person typed with an apostrophe of their own keep it.
        for kept in ["'tis", "'", "'12", "O'Brien", "'  =x"] {
            assert_eq!(restore(kept), kept);
        }
        assert_eq!(restore("'=1+1"), "=1+1");
        assert_eq!(restore("''=1+1"), "'=1+1");
        assert_eq!(restore("'\u{FF20}x"), "\u{FF20}x");
        assert_eq!(restore("'\nx"), "\nx");
    }

    #[test]
    fn every_value_survives_the_round_trip_and_none_is_shown_as_a_formula() {
        let starts = [
            "", "'", "''", "=", "+", "-", "@", "\t", "\r", "\n", "\u{FF1D}", " ", "a",
        ];
        for a in starts {
            for b in starts {
                let cell = format!("{a}{b}x");
                assert_eq!(restore(&neutralize(&cell)), cell, "{cell:?}");
                let shown = neutralize(&cell);
                assert!(
                    !shown.starts_with(FORMULA_STARTS),
                    "{cell:?} is shown as {shown:?}"
                );
            }
        }
    }

    #[test]
    fn records_are_numbered_as_the_parser_numbers_them() {
        let bytes = b"a,b\n,\nc,d\n\"e\nf\",g\n";
        let rows = numbered_records(bytes, b',', 10, None).unwrap_or_default();
        let numbers: Vec<u64> = rows.iter().map(|(r, _)| *r).collect();
        assert_eq!(numbers, vec![10, 12, 13], "the blank record keeps row 11");
        assert_eq!(rows[2].1, vec!["e\nf".to_string(), "g".to_string()]);
        let retried = numbered_records(b"x\ny\n", b',', 0, Some(&[4, 90])).unwrap_or_default();
        assert_eq!(
            retried.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            vec![4, 90]
        );
    }

    #[test]
    fn a_record_file_cuts_chunks_at_record_boundaries() {
        let header = vec!["case_number".to_string(), "name".to_string()];
        let mut f = RecordFile::new(b',', &header, 2).unwrap();
        for (i, name) in ["a", "b,c", "d"].iter().enumerate() {
            f.record(&[format!("C{i}"), name.to_string()]).unwrap();
        }
        let (bytes, chunks) = f.finish().unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].rows, chunks[1].rows), (2, 1));
        let first = &bytes[chunks[0].start as usize..chunks[0].end as usize];
        assert_eq!(first, b"C0,a\nC1,\"b,c\"\n");
        let second = &bytes[chunks[1].start as usize..chunks[1].end as usize];
        assert_eq!(second, b"C2,d\n");
    }
}
