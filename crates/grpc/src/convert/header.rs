//! The header of an upload (the streaming upload's first message, and the
//! resumable upload's CreateUpload): which import, file, type and size, and
//! how to read the file.

use passare_imports_app::error::ApiError;
use passare_imports_app::uploads::{FileUpload, ReadOptions};
use passare_imports_domain::catalog::{ImportTypeDef, normalize_header};
use passare_imports_domain::file::decode::Encoding;
use passare_imports_proto::v1 as pb;

use super::{import_type_named, uuid};

/// The file an upload header describes; `field` prefixes the request fields
/// named in errors ("header").
pub fn file_upload(h: &pb::FileHeader, field: &str) -> Result<FileUpload, ApiError> {
    let at = |name: &str| format!("{field}.{name}");
    let import_id = uuid(&at("import_id"), &h.import_id)?;
    let def = import_type_named(&at("import_type"), &h.import_type)?;
    Ok(FileUpload {
        import_id,
        file_name: h.file_name.trim().to_string(),
        def,
        declared_size: u64::try_from(h.declared_size_bytes).unwrap_or(0),
        declared_sha256: None,
        reading: read_options(def, h, field)?,
        profile: None,
    })
}

/// How the header says to read the file.
fn read_options(
    def: &'static ImportTypeDef,
    h: &pb::FileHeader,
    field: &str,
) -> Result<ReadOptions, ApiError> {
    let encoding = match h.encoding.trim() {
        "" => None,
        name => Some(Encoding::parse(name).ok_or_else(|| {
            ApiError::invalid(
                &format!("{field}.encoding"),
                format!(
                    "{name:?} is not a supported encoding; use utf-8, utf-16 or windows-1252, or leave it empty to detect"
                ),
            )
        })?),
    };
    let delimiter = match h.delimiter.as_str() {
        "" => None,
        "," => Some(b','),
        "\t" | "\\t" | "tab" | "TAB" => Some(b'\t'),
        ";" => Some(b';'),
        "|" => Some(b'|'),
        other => {
            return Err(ApiError::invalid(
                &format!("{field}.delimiter"),
                format!("{other:?} is not a delimiter; use \",\", \"\\t\", \";\" or \"|\""),
            ));
        }
    };
    let mut mapping = Vec::new();
    for (i, m) in h.column_mapping.iter().enumerate() {
        let wanted = normalize_header(&m.column);
        if def
            .columns
            .iter()
            .all(|c| normalize_header(c.name) != wanted)
        {
            let columns: Vec<&str> = def.columns.iter().map(|c| c.name).collect();
            return Err(ApiError::invalid(
                &format!("{field}.column_mapping[{i}].column"),
                format!(
                    "{:?} is not a column of {}; its columns are {}",
                    m.column,
                    def.display_name,
                    columns.join(", ")
                ),
            ));
        }
        mapping.push((m.header.clone(), m.column.clone()));
    }
    Ok(ReadOptions {
        encoding,
        sheet: Some(h.sheet_name.trim().to_string()).filter(|s| !s.is_empty()),
        delimiter,
        mapping,
        profile_id: match h.profile_id.trim() {
            "" => None,
            id => Some(uuid(&format!("{field}.profile_id"), id)?),
        },
    })
}
