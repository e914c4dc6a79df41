//! A synthetic set of all twelve import types for one organization,
//! deterministic for a seed: Cases and, per case, its basic information,
//! family members, events and contract (with payments), a veteran record for
//! some; and, in proportion, rolodex entries, price list items, client service
//! types, checks and bank transactions. Every reference resolves: to a case
//! or contract of the set, or to the demo organization's setup (GL and bank
//! accounts), and every row passes the type's checks.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{CASES_HEADER, DEMO_BANK_ACCOUNTS, DEMO_GL_ACCOUNTS, DEMO_LOCATIONS, case_row};

/// One generated file: its import type, path and data rows.
#[derive(Debug, Clone)]
pub struct MixedFile {
    pub import_type: &'static str,
    pub path: PathBuf,
    pub rows: u64,
}

const BASIC_HEADER: [&str; 16] = [
    "case_number",
    "sex",
    "ssn",
    "marital_status",
    "place_of_birth",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zip",
    "county",
    "occupation",
    "industry",
    "education",
    "father_name",
    "mother_maiden_name",
];
const VETERAN_HEADER: [&str; 10] = [
    "case_number",
    "branch",
    "service_number",
    "rank",
    "entered_on",
    "discharged_on",
    "war_period",
    "discharge_type",
    "flag_requested",
    "headstone_requested",
];
const FAMILY_HEADER: [&str; 12] = [
    "case_number",
    "first_name",
    "last_name",
    "relationship",
    "is_next_of_kin",
    "is_informant",
    "phone",
    "email",
    "address_line1",
    "city",
    "state",
    "zip",
];
const EVENTS_HEADER: [&str; 7] = [
    "case_number",
    "event_type",
    "starts_at",
    "ends_at",
    "location_name",
    "officiant",
    "notes",
];
const CONTRACT_HEADER: [&str; 10] = [
    "contract_number",
    "case_number",
    "contract_date",
    "total",
    "contract_type",
    "purchaser_name",
    "subtotal",
    "tax",
    "discount",
    "status",
];
const PAYMENTS_HEADER: [&str; 7] = [
    "contract_number",
    "paid_on",
    "amount",
    "method",
    "reference",
    "payer_name",
    "case_number",
];
const ROLODEX_HEADER: [&str; 12] = [
    "name",
    "category",
    "contact_first_name",
    "contact_last_name",
    "phone",
    "email",
    "address_line1",
    "city",
    "state",
    "zip",
    "website",
    "notes",
];
const PRICE_LIST_HEADER: [&str; 7] = [
    "item_code",
    "name",
    "category",
    "price",
    "taxable",
    "gl_account_code",
    "active",
];
const SERVICE_TYPES_HEADER: [&str; 5] =
    ["code", "name", "description", "default_case_type", "active"];
const CHECKS_HEADER: [&str; 8] = [
    "bank_account_number",
    "check_number",
    "issued_on",
    "payee",
    "amount",
    "memo",
    "case_number",
    "status",
];
const BANK_TX_HEADER: [&str; 6] = [
    "bank_account_number",
    "posted_on",
    "amount",
    "description",
    "reference",
    "type",
];

const FIRST: &[&str] = &[
    "Mary", "James", "Linda", "Robert", "Susan", "David", "Karen", "Thomas", "Nancy", "Paul",
];
const LAST: &[&str] = &[
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Moore", "Taylor", "Clark",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Dayton", "OH", "454"),
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Albany", "NY", "122"),
    ("Tampa", "FL", "336"),
];
const RELATIONSHIPS: &[&str] = &[
    "spouse",
    "child",
    "parent",
    "sibling",
    "grandchild",
    "friend",
];
const BRANCHES: &[&str] = &["army", "navy", "air_force", "marine_corps", "coast_guard"];
const EVENT_TYPES: &[&str] = &[
    "visitation",
    "funeral_service",
    "memorial_service",
    "committal",
];
const METHODS: &[&str] = &["cash", "check", "credit_card", "ach", "insurance"];
const ROLODEX_CATEGORIES: &[&str] = &[
    "church",
    "cemetery",
    "crematory",
    "florist",
    "hospital",
    "vendor",
];
const PRICE_CATEGORIES: &[&str] = &[
    "professional_services",
    "merchandise",
    "cash_advance",
    "facilities",
    "vehicles",
];

/// A CSV file being written, counting its data rows.
struct Out {
    import_type: &'static str,
    path: PathBuf,
    rows: u64,
    w: csv::Writer<BufWriter<std::fs::File>>,
}

impl Out {
    fn create(dir: &Path, import_type: &'static str, header: &[&str]) -> anyhow::Result<Self> {
        let path = dir.join(format!("{import_type}.csv"));
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
        w.write_record(header)?;
        Ok(Self {
            import_type,
            path,
            rows: 0,
            w,
        })
    }

    fn row<I: AsRef<[u8]>>(&mut self, record: impl IntoIterator<Item = I>) -> anyhow::Result<()> {
        self.w
            .write_record(record)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<MixedFile> {
        self.w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))?
            .flush()?;
        Ok(MixedFile {
            import_type: self.import_type,
            path: self.path,
            rows: self.rows,
        })
    }
}

/// Rows of each type not tied to a case, for `cases` cases: one per
/// hundred cases (checks and bank transactions one per forty), at least 20.
pub fn side_rows(cases: u64) -> (u64, u64) {
    ((cases / 100).max(20), (cases / 40).max(20))
}

/// Writes the twelve files into `dir` (created if needed) and returns them
/// in loading order: cases first, then the rows that refer to them.
pub fn write_mixed(dir: &Path, cases: u64, seed: u64) -> anyhow::Result<Vec<MixedFile>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = write_case_files(dir, cases, seed)?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_51de);
    let (each, money) = side_rows(cases);
    let mut rolodex = Out::create(dir, "rolodex", &ROLODEX_HEADER)?;
    for i in 1..=each {
        rolodex.row(rolodex_row(&mut rng, i))?;
    }
    let mut prices = Out::create(dir, "price_list", &PRICE_LIST_HEADER)?;
    for i in 1..=each {
        prices.row(price_row(&mut rng, i))?;
    }
    let mut kinds = Out::create(dir, "client_service_types", &SERVICE_TYPES_HEADER)?;
    for i in 1..=each {
        kinds.row(service_type_row(&mut rng, i))?;
    }
    let mut checks = Out::create(dir, "checks", &CHECKS_HEADER)?;
    for i in 1..=money {
        checks.row(check_row(&mut rng, i, cases))?;
    }
    let mut bank = Out::create(dir, "bank_transactions", &BANK_TX_HEADER)?;
    for i in 1..=money {
        bank.row(bank_tx_row(&mut rng, i))?;
    }
    for out in [rolodex, prices, kinds, checks, bank] {
        files.push(out.finish()?);
    }
    Ok(files)
}

/// Cases and the seven types that hang off a case, in one pass.
fn write_case_files(dir: &Path, cases: u64, seed: u64) -> anyhow::Result<Vec<MixedFile>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut case_file = Out::create(dir, "cases", &CASES_HEADER)?;
    let mut basic = Out::create(dir, "basic_information", &BASIC_HEADER)?;
    let mut veterans = Out::create(dir, "veteran_information", &VETERAN_HEADER)?;
    let mut family = Out::create(dir, "family_and_friends", &FAMILY_HEADER)?;
    let mut events = Out::create(dir, "events", &EVENTS_HEADER)?;
    let mut contracts = Out::create(dir, "contract_information", &CONTRACT_HEADER)?;
    let mut payments = Out::create(dir, "payments", &PAYMENTS_HEADER)?;
    for i in 1..=cases {
        let case = case_row(&mut rng, i);
        let number = case[0].clone();
        let last = case[3].clone();
        case_file.row(&case)?;
        basic.row(basic_row(&mut rng, &number))?;
        if rng.random_bool(0.3) {
            veterans.row(veteran_row(&mut rng, &number))?;
        }
        // Two relatives with distinct first names; the first is next of kin.
        let a = rng.random_range(0..FIRST.len());
        let b = (a + rng.random_range(1..FIRST.len())) % FIRST.len();
        family.row(family_row(&mut rng, &number, FIRST[a], &last, true))?;
        family.row(family_row(&mut rng, &number, FIRST[b], &last, false))?;
        let (year, month, day) = (
            rng.random_range(2020..=2025),
            rng.random_range(1..=12),
            // The second event may fall on the next day: still in the month.
            rng.random_range(1..=27),
        );
        let held = if rng.random_bool(0.5) { 2 } else { 1 };
        for (k, kind) in EVENT_TYPES.iter().take(held).enumerate() {
            events.row(event_row(&number, kind, (year, month, day + k as u32 % 2)))?;
        }
        let contract = format!("K{i:08}");
        let total = contract_cents(
            &mut rng,
            &mut contracts,
            &contract,
            &number,
            (year, month, day),
        )?;
        // Two payments that together settle the contract.
        let first = total / 2;
        for (k, amount) in [(1, first), (2, total - first)] {
            payments.row([
                contract.clone(),
                format!("{month}/{day}/{year}"),
                money(amount),
                METHODS[rng.random_range(0..METHODS.len())].to_string(),
                format!("R{i:08}-{k}"),
                format!("{} {last}", FIRST[a]),
                number.clone(),
            ])?;
        }
    }
    [
        case_file, basic, veterans, family, events, contracts, payments,
    ]
    .into_iter()
    .map(Out::finish)
    .collect()
}

/// `cents` as `1234.56`.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

fn basic_row(rng: &mut StdRng, case: &str) -> [String; 16] {
    let (city, state, zip) = CITIES[rng.random_range(0..CITIES.len())];
    [
        case.to_string(),
        if rng.random_bool(0.5) {
            "female"
        } else {
            "male"
        }
        .to_string(),
        format!(
            "{:03}-{:02}-{:04}",
            rng.random_range(100..665),
            rng.random_range(10..99),
            rng.random_range(1000..9999)
        ),
        ["married", "widowed", "divorced", "never_married"][rng.random_range(0..4)].to_string(),
        format!("{city}, {state}"),
        format!("{} Oak St", rng.random_range(1..999)),
        String::new(),
        city.to_string(),
        state.to_string(),
        format!("{zip}{:02}", rng.random_range(1..99)),
        "Montgomery".to_string(),
        "Teacher".to_string(),
        "Education".to_string(),
        "Bachelors".to_string(),
        format!("{} {}", FIRST[rng.random_range(0..FIRST.len())], LAST[0]),
        format!("{} {}", FIRST[rng.random_range(0..FIRST.len())], LAST[1]),
    ]
}

fn veteran_row(rng: &mut StdRng, case: &str) -> [String; 10] {
    let entered = rng.random_range(1940..1990);
    let served = rng.random_range(2..8);
    [
        case.to_string(),
        BRANCHES[rng.random_range(0..BRANCHES.len())].to_string(),
        format!("SN-{}", rng.random_range(10_000..99_999)),
        "Sergeant".to_string(),
        format!("{entered}-06-01"),
        format!("{}-05-31", entered + served),
        "Vietnam".to_string(),
        "Honorable".to_string(),
        "yes".to_string(),
        if rng.random_bool(0.5) { "y" } else { "n" }.to_string(),
    ]
}

fn family_row(rng: &mut StdRng, case: &str, first: &str, last: &str, kin: bool) -> [String; 12] {
    let (city, state, zip) = CITIES[rng.random_range(0..CITIES.len())];
    let handle = format!("{first}.{last}").to_lowercase().replace('\'', "");
    [
        case.to_string(),
        first.to_string(),
        last.to_string(),
        RELATIONSHIPS[rng.random_range(0..RELATIONSHIPS.len())].to_string(),
        if kin { "yes" } else { "no" }.to_string(),
        if kin { "true" } else { "false" }.to_string(),
        format!("(415) 867-{:04}", rng.random_range(1000..9999)),
        format!("{handle}@example.com"),
        format!("{} Elm St", rng.random_range(1..999)),
        city.to_string(),
        state.to_string(),
        format!("{zip}{:02}", rng.random_range(1..99)),
    ]
}

fn event_row(case: &str, kind: &str, (year, month, day): (i32, u32, u32)) -> [String; 7] {
    [
        case.to_string(),
        kind.to_string(),
        format!("{year}-{month:02}-{day:02} 10:00"),
        format!("{year}-{month:02}-{day:02} 12:30"),
        DEMO_LOCATIONS[day as usize % DEMO_LOCATIONS.len()].to_string(),
        "Rev. Paul Allen".to_string(),
        String::new(),
    ]
}

/// Writes a contract whose total is subtotal + tax − discount; returns the
/// total in cents.
fn contract_cents(
    rng: &mut StdRng,
    out: &mut Out,
    contract: &str,
    case: &str,
    (year, month, day): (i32, u32, u32),
) -> anyhow::Result<i64> {
    let subtotal: i64 = rng.random_range(100_000..1_500_000);
    let tax = subtotal * 7 / 100;
    let discount = if rng.random_bool(0.2) { 10_000 } else { 0 };
    let total = subtotal + tax - discount;
    out.row([
        contract.to_string(),
        case.to_string(),
        format!("{year}-{month:02}-{day:02}"),
        money(total),
        if rng.random_bool(0.8) {
            "at_need"
        } else {
            "pre_need"
        }
        .to_string(),
        format!("{} {}", FIRST[rng.random_range(0..FIRST.len())], LAST[2]),
        money(subtotal),
        money(tax),
        money(discount),
        "signed".to_string(),
    ])?;
    Ok(total)
}

fn rolodex_row(rng: &mut StdRng, i: u64) -> [String; 12] {
    let category = ROLODEX_CATEGORIES[rng.random_range(0..ROLODEX_CATEGORIES.len())];
    let (city, state, zip) = CITIES[rng.random_range(0..CITIES.len())];
    [
        format!("{} {category} {i}", LAST[rng.random_range(0..LAST.len())]),
        category.to_string(),
        FIRST[rng.random_range(0..FIRST.len())].to_string(),
        LAST[rng.random_range(0..LAST.len())].to_string(),
        format!("(212) 555-{:04}", rng.random_range(1000..9999)),
        format!("office{i}@contacts.example"),
        format!("{} Main St", rng.random_range(1..999)),
        city.to_string(),
        state.to_string(),
        format!("{zip}{:02}", rng.random_range(1..99)),
        format!("https://contact{i}.example"),
        String::new(),
    ]
}

fn price_row(rng: &mut StdRng, i: u64) -> [String; 7] {
    let category = PRICE_CATEGORIES[rng.random_range(0..PRICE_CATEGORIES.len())];
    [
        format!("ITEM-{i:06}"),
        format!("Item {i} ({category})"),
        category.to_string(),
        money(rng.random_range(500..500_000)),
        if rng.random_bool(0.5) { "yes" } else { "no" }.to_string(),
        DEMO_GL_ACCOUNTS[rng.random_range(0..DEMO_GL_ACCOUNTS.len())]
            .0
            .to_string(),
        "yes".to_string(),
    ]
}

fn service_type_row(rng: &mut StdRng, i: u64) -> [String; 5] {
    [
        format!("SVC-{i:06}"),
        format!("Service type {i}"),
        "Visitation and service".to_string(),
        ["at_need", "pre_need", "other"][rng.random_range(0..3)].to_string(),
        if rng.random_bool(0.9) { "yes" } else { "no" }.to_string(),
    ]
}

fn check_row(rng: &mut StdRng, i: u64, cases: u64) -> [String; 8] {
    let case = if cases > 0 && rng.random_bool(0.5) {
        format!("C{:08}", rng.random_range(1..=cases))
    } else {
        String::new()
    };
    [
        DEMO_BANK_ACCOUNTS[(i % DEMO_BANK_ACCOUNTS.len() as u64) as usize]
            .0
            .to_string(),
        format!("{}", 10_000 + i),
        format!(
            "{}/{}/2025",
            rng.random_range(1..=12),
            rng.random_range(1..=28)
        ),
        format!("{} Cemetery", LAST[rng.random_range(0..LAST.len())]),
        money(rng.random_range(1_000..500_000)),
        "Opening and closing".to_string(),
        case,
        ["issued", "cleared", "void"][rng.random_range(0..3)].to_string(),
    ]
}

fn bank_tx_row(rng: &mut StdRng, i: u64) -> [String; 6] {
    let credit = rng.random_bool(0.5);
    let cents: i64 = rng.random_range(1_000..500_000);
    [
        DEMO_BANK_ACCOUNTS[(i % DEMO_BANK_ACCOUNTS.len() as u64) as usize]
            .0
            .to_string(),
        format!(
            "2025-{:02}-{:02}",
            rng.random_range(1..=12),
            rng.random_range(1..=28)
        ),
        money(if credit { cents } else { -cents }),
        if credit { "Deposit" } else { "Vendor payment" }.to_string(),
        format!("TX-{i:08}"),
        if credit { "credit" } else { "debit" }.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_files_in_proportion() {
        let dir = std::env::temp_dir().join(format!("mixed-{}", std::process::id()));
        let files = write_mixed(&dir, 100, 7).unwrap();
        assert_eq!(files.len(), 12);
        let rows = |t: &str| files.iter().find(|f| f.import_type == t).unwrap().rows;
        assert_eq!(rows("cases"), 100);
        assert_eq!(rows("family_and_friends"), 200);
        assert_eq!(rows("payments"), 200);
        assert!((100..=200).contains(&rows("events")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(money(123_456), "1234.56");
        assert_eq!(money(-5), "-0.05");
    }
}
