//! An uploaded file before its rows are parsed: what it is and how it
//! becomes UTF-8 text ([`decode`]: encodings and workbooks), then its
//! structure, rows and chunks ([`scan`]).

mod declared;
pub mod decode;
pub mod scan;
pub mod workbook_limits;
