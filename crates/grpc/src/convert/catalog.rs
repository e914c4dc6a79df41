//! The catalog of import types as the API shows it.

use passare_imports_domain::catalog::{ImportTypeDef, RefTarget};
use passare_imports_proto::v1 as pb;

/// One type of the catalog as the API shows it.
pub fn import_type(def: &ImportTypeDef) -> pb::ImportType {
    pb::ImportType {
        key: def.key.into(),
        display_name: def.display_name.into(),
        columns: def
            .columns
            .iter()
            .map(|c| pb::ColumnSpec {
                name: c.name.into(),
                kind: c.kind.name().into(),
                required: c.required,
                aliases: c.aliases.iter().map(|a| a.to_string()).collect(),
                values: c.kind.values().into_iter().map(String::from).collect(),
                sensitive: c.sensitive,
                description: c.kind.describe(),
            })
            .collect(),
        key_columns: def.key_columns.iter().map(|k| k.to_string()).collect(),
        references: def
            .references
            .iter()
            .map(|r| pb::ReferenceSpec {
                column: r.column.into(),
                describes: r.describes.into(),
                import_type: match r.target {
                    RefTarget::Records { type_key } => type_key.into(),
                    RefTarget::Setup { .. } => String::new(),
                },
            })
            .collect(),
        prerequisites: def
            .prerequisites
            .iter()
            .map(|p| p.missing.to_string())
            .collect(),
        dependencies: def.dependencies().into_iter().map(String::from).collect(),
        row_checks: def.row_checks.iter().map(|c| c.describe()).collect(),
        load_order: def.load_rank(),
    }
}
