//! The twelve import types, one definition a file, and the aliases several share.

use crate::catalog::*;

mod bank_transactions;
mod basic_information;
mod cases;
mod checks;
mod client_service_types;
mod contract_information;
mod events;
mod family_and_friends;
mod payments;
mod price_list;
mod rolodex;
mod veteran_information;

pub use bank_transactions::BANK_TRANSACTIONS;
pub use basic_information::BASIC_INFORMATION;
pub use cases::CASES;
pub use checks::CHECKS;
pub use client_service_types::CLIENT_SERVICE_TYPES;
pub use contract_information::CONTRACT_INFORMATION;
pub use events::EVENTS;
pub use family_and_friends::FAMILY_AND_FRIENDS;
pub use payments::PAYMENTS;
pub use price_list::PRICE_LIST;
pub use rolodex::ROLODEX;
pub use veteran_information::VETERAN_INFORMATION;

const CASE_NUMBER_ALIASES: &[&str] = &[
    "case #",
    "case no",
    "case_no",
    "casenumber",
    "case id",
    "case",
];

/// The case a row belongs to, by case number.
const CASE_NUMBER_REF: ReferenceDef = ReferenceDef::records("case_number", "case", "cases");

const STATE_ALIASES: &[&str] = &["st", "province"];
const ZIP_ALIASES: &[&str] = &["zip code", "zipcode", "postal code", "postcode"];
const ADDRESS1_ALIASES: &[&str] = &["address", "address 1", "street", "street address"];

const BANK_ACCOUNT_ALIASES: &[&str] = &["account", "account number", "account #", "bank account"];

/// The organization's bank account a row is drawn on, by number.
const BANK_ACCOUNT_REF: ReferenceDef = ReferenceDef::setup(
    "bank_account_number",
    "bank account of the organization",
    ("bank_accounts", "number"),
    "bank_account_id",
);

/// Types that refer to bank accounts need the organization to have one.
const BANK_ACCOUNT_NEEDED: PrerequisiteDef = PrerequisiteDef {
    table: "bank_accounts",
    missing: "has no bank account",
};
