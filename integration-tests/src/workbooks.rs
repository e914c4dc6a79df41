//! Workbooks written part by part, to make the hostile ones a spreadsheet
//! program never writes: counts declared far beyond what the parts hold,
//! parts that inflate a thousandfold, XML nested thousands deep.

use std::io::{Cursor, Write};

use zip::ZipWriter;
use zip::write::SimpleFileOptions;

const MAIN_NS: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const REL_NS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
const DOC_REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// The parts of a one-sheet workbook named `cases`, to change before writing.
pub struct Parts {
    /// Written inside `<sheetData>`.
    pub rows: String,
    /// Written between `<worksheet>` and `<sheetData>` (e.g. a `<dimension>`).
    pub before_data: String,
    /// Written after `</sheetData>`.
    pub after_data: String,
    /// The `<sst>` element's attributes.
    pub sst_attributes: String,
    /// The shared strings, each an `<si>`.
    pub strings: Vec<String>,
}

impl Parts {
    /// A valid sheet of Cases: a header and `rows` rows of inline text, and
    /// the shared string table holding one string.
    pub fn cases(rows: u32) -> Self {
        let mut text = row(
            1,
            &["case_number", "deceased_first_name", "deceased_last_name"],
        );
        for r in 2..=rows + 1 {
            text.push_str(&row(r, &[&format!("W{r}"), "Ann", "Lee"]));
        }
        Self {
            rows: text,
            before_data: String::new(),
            after_data: String::new(),
            sst_attributes: r#"count="1" uniqueCount="1""#.into(),
            strings: vec!["unused".into()],
        }
    }

    /// The workbook's bytes, every part deflated.
    pub fn write(&self) -> anyhow::Result<Vec<u8>> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let strings: String = self
            .strings
            .iter()
            .map(|s| format!("<si><t>{s}</t></si>"))
            .collect();
        let parts = [
            (
                "[Content_Types].xml",
                String::from(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#,
                ),
            ),
            (
                "_rels/.rels",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="{REL_NS}"><Relationship Id="rId1" Type="{DOC_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
                ),
            ),
            (
                "xl/workbook.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{MAIN_NS}" xmlns:r="{DOC_REL}"><sheets><sheet name="cases" sheetId="1" r:id="rId1"/></sheets></workbook>"#
                ),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="{REL_NS}"><Relationship Id="rId1" Type="{DOC_REL}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{DOC_REL}/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#
                ),
            ),
            (
                "xl/worksheets/sheet1.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{MAIN_NS}">{}<sheetData>{}</sheetData>{}</worksheet>"#,
                    self.before_data, self.rows, self.after_data
                ),
            ),
            (
                "xl/sharedStrings.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="{MAIN_NS}" {}>{strings}</sst>"#,
                    self.sst_attributes
                ),
            ),
        ];
        for (name, content) in parts {
            zip.start_file(name, options)?;
            zip.write_all(content.as_bytes())?;
        }
        Ok(zip.finish()?.into_inner())
    }
}

/// One row of inline-text cells.
fn row(r: u32, cells: &[&str]) -> String {
    let mut out = format!(r#"<row r="{r}">"#);
    for (i, value) in cells.iter().enumerate() {
        let column = char::from(b'A' + i as u8);
        out.push_str(&format!(
            r#"<c r="{column}{r}" t="inlineStr"><is><t>{value}</t></is></c>"#
        ));
    }
    out.push_str("</row>");
    out
}
