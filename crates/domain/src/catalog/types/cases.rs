//! Cases: one row per case (a death and the services around it).

use crate::catalog::*;
use crate::values::ValueKind;

/// Cases: one row per case (a death and the services around it).
pub const CASES: ImportTypeDef = ImportTypeDef {
    key: "cases",
    display_name: "Cases",
    target_table: "cases",
    columns: &[
        required(aliases(
            col("case_number", ValueKind::Text),
            &[
                "case #",
                "case no",
                "case_no",
                "casenumber",
                "case id",
                "case",
            ],
        )),
        required(aliases(
            col("deceased_first_name", ValueKind::Text),
            &[
                "first name",
                "first_name",
                "decedent first name",
                "given name",
            ],
        )),
        aliases(
            col("deceased_middle_name", ValueKind::Text),
            &["middle name", "middle_name", "decedent middle name"],
        ),
        required(aliases(
            col("deceased_last_name", ValueKind::Text),
            &["last name", "last_name", "decedent last name", "surname"],
        )),
        col("suffix", ValueKind::Text),
        aliases(
            col("date_of_birth", ValueKind::Date),
            &["dob", "birth date", "birthdate", "born"],
        ),
        aliases(
            col("date_of_death", ValueKind::Date),
            &["dod", "death date", "deathdate", "died"],
        ),
        aliases(
            col(
                "case_type",
                ValueKind::Enum(&[
                    ("at_need", &["at need", "atneed"]),
                    ("pre_need", &["pre need", "preneed"]),
                    ("other", &[]),
                ]),
            ),
            &["type"],
        ),
        aliases(
            col(
                "case_status",
                ValueKind::Enum(&[
                    ("open", &["active"]),
                    ("closed", &[]),
                    ("cancelled", &["canceled"]),
                ]),
            ),
            &["status"],
        ),
        col(
            "disposition",
            ValueKind::Enum(&[
                ("burial", &["bury"]),
                ("cremation", &["cremate"]),
                ("entombment", &[]),
                ("donation", &["body donation"]),
                ("other", &[]),
            ]),
        ),
        lookup_only(aliases(
            col("location_name", ValueKind::Text),
            &["location", "branch"],
        )),
        lookup_only(aliases(
            col("director_email", ValueKind::Email),
            &["director", "funeral director email", "director e-mail"],
        )),
        aliases(
            col("opened_on", ValueKind::Date),
            &["opened", "open date", "date opened"],
        ),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["case_number"],
    references: &[
        ReferenceDef {
            column: "location_name",
            describes: "location of the organization",
            target: RefTarget::Setup {
                table: "locations",
                match_column: "name",
            },
            store_id_as: Some("location_id"),
            agrees: &[],
        },
        ReferenceDef {
            column: "director_email",
            describes: "staff user of the organization",
            target: RefTarget::Setup {
                table: "staff_users",
                match_column: "email",
            },
            store_id_as: Some("director_user_id"),
            agrees: &[],
        },
    ],
    prerequisites: &[PrerequisiteDef {
        table: "locations",
        missing: "has no location",
    }],
    row_checks: &[
        RowCheck::NotBefore {
            later: "date_of_death",
            earlier: "date_of_birth",
        },
        RowCheck::NotInFuture("date_of_birth"),
        RowCheck::NotInFuture("date_of_death"),
    ],
    derived_key: None,
    sum_within: None,
};
