//! Synthetic Cases files for the quick start, tests and benchmarks: realistic
//! values, deterministic for a seed, referring to the demo organization's
//! locations and staff.

pub mod mixed;

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const DEMO_LOCATIONS: &[&str] = &["Main Chapel", "North Chapel"];
pub const DEMO_STAFF: &[(&str, &str)] = &[
    ("director@riverside.example", "Morgan Director"),
    ("arranger@riverside.example", "Alex Arranger"),
];

pub const DEMO_GL_ACCOUNTS: &[(&str, &str)] = &[
    ("4000", "Professional services revenue"),
    ("4100", "Merchandise revenue"),
    ("4200", "Cash advances"),
];
pub const DEMO_BANK_ACCOUNTS: &[(&str, &str)] = &[
    ("100200300", "Operating account"),
    ("100200400", "Trust account"),
];

/// The demo organization's setup: everything every import type needs.
pub const DEMO_SETUP: passare_imports_store::organizations::OrgSetup<'static> =
    passare_imports_store::organizations::OrgSetup {
        locations: DEMO_LOCATIONS,
        staff: DEMO_STAFF,
        gl_accounts: DEMO_GL_ACCOUNTS,
        bank_accounts: DEMO_BANK_ACCOUNTS,
    };

pub const CASES_HEADER: [&str; 13] = [
    "case_number",
    "deceased_first_name",
    "deceased_middle_name",
    "deceased_last_name",
    "suffix",
    "date_of_birth",
    "date_of_death",
    "case_type",
    "case_status",
    "disposition",
    "location_name",
    "director_email",
    "opened_on",
];

const FIRST: &[&str] = &[
    "Mary",
    "James",
    "Patricia",
    "John",
    "Linda",
    "Robert",
    "Barbara",
    "Michael",
    "Elizabeth",
    "William",
    "Susan",
    "David",
    "Jessica",
    "Richard",
    "Sarah",
    "Joseph",
    "Karen",
    "Thomas",
    "Nancy",
    "Charles",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "O'Brien",
];
const SUFFIX: &[&str] = &["", "", "", "", "", "", "Jr.", "Sr.", "III"];
const CASE_TYPE: &[&str] = &["at_need", "pre_need", "other"];
const STATUS: &[&str] = &["open", "closed", "cancelled"];
const DISPOSITION: &[&str] = &["burial", "cremation", "entombment", "donation", "other"];

/// One synthetic Cases row; `i` is its 1-based number.
pub fn case_row(rng: &mut StdRng, i: u64) -> [String; 13] {
    let birth_year = rng.random_range(1920..1990);
    let (bm, bd) = (rng.random_range(1..=12), rng.random_range(1..=28));
    let death_year = rng.random_range((birth_year + 20).max(2000)..=2025);
    let (dm, dd) = (rng.random_range(1..=12), rng.random_range(1..=28));
    [
        format!("C{i:08}"),
        FIRST[rng.random_range(0..FIRST.len())].to_string(),
        if rng.random_bool(0.5) {
            FIRST[rng.random_range(0..FIRST.len())].to_string()
        } else {
            String::new()
        },
        LAST[rng.random_range(0..LAST.len())].to_string(),
        SUFFIX[rng.random_range(0..SUFFIX.len())].to_string(),
        // Half ISO, half US style: both are accepted.
        if i.is_multiple_of(2) {
            format!("{birth_year}-{bm:02}-{bd:02}")
        } else {
            format!("{bm}/{bd}/{birth_year}")
        },
        format!("{death_year}-{dm:02}-{dd:02}"),
        CASE_TYPE[rng.random_range(0..CASE_TYPE.len())].to_string(),
        STATUS[rng.random_range(0..STATUS.len())].to_string(),
        DISPOSITION[rng.random_range(0..DISPOSITION.len())].to_string(),
        DEMO_LOCATIONS[rng.random_range(0..DEMO_LOCATIONS.len())].to_string(),
        DEMO_STAFF[rng.random_range(0..DEMO_STAFF.len())]
            .0
            .to_string(),
        format!("{death_year}-{dm:02}-{dd:02}"),
    ]
}

/// Writes `rows` synthetic Cases rows with a header to `out`.
pub fn write_cases(out: &Path, rows: u64, seed: u64) -> anyhow::Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    w.write_record(CASES_HEADER)?;
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 1..=rows {
        w.write_record(case_row(&mut rng, i))?;
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .flush()?;
    Ok(())
}
