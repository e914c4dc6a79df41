//! The records of earlier files an analysis holds in memory for references
//! to them, known by a fingerprint of their key instead of the key itself:
//! a million Cases keys took a 56 MiB map and 11 MB or more of key strings
//! (jemalloc's heap profile of a 1M-row analysis), and take a 40 MiB map.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

/// Values of a remembered record's columns that references read, in the
/// order of the type's record columns.
pub(super) type Values = Box<[Option<String>]>;

/// 128-bit fingerprints of record keys: two SipHash-1-3 hashes under
/// independent keys drawn for the analysis (std's `RandomState`). Two
/// different keys among a million share one with a probability of about
/// 10⁻²⁷, and a file cannot be built to make them collide, the hash keys
/// being secret and new for every analysis.
pub(super) struct Fingerprints([RandomState; 2]);

impl Fingerprints {
    pub(super) fn new() -> Self {
        Self([RandomState::new(), RandomState::new()])
    }

    pub(super) fn of(&self, key: &str) -> u128 {
        let [high, low] = &self.0;
        u128::from(high.hash_one(key)) << 64 | u128::from(low.hash_one(key))
    }
}

/// One type's records held in memory.
pub(super) enum Held {
    /// A type none of whose columns references read: its keys.
    Keys(HashSet<u128>),
    /// A type with columns references read: its keys and those values.
    Records(HashMap<u128, Values>),
}

impl Held {
    /// Room for `capacity` records of a type with `columns` read columns.
    pub(super) fn with_capacity(columns: usize, capacity: usize) -> Self {
        if columns == 0 {
            Held::Keys(HashSet::with_capacity(capacity))
        } else {
            Held::Records(HashMap::with_capacity(capacity))
        }
    }

    pub(super) fn contains(&self, key: u128) -> bool {
        match self {
            Held::Keys(keys) => keys.contains(&key),
            Held::Records(records) => records.contains_key(&key),
        }
    }

    /// The record's values; empty for a type without read columns.
    pub(super) fn get(&self, key: u128) -> Option<&[Option<String>]> {
        match self {
            Held::Keys(keys) => keys.contains(&key).then_some(&[][..]),
            Held::Records(records) => records.get(&key).map(|v| &v[..]),
        }
    }

    /// Holds a record not held yet (its values made by `values`), in one
    /// probe of the map; the first values held for a key stay. Whether it
    /// was new.
    pub(super) fn hold(&mut self, key: u128, values: impl FnOnce() -> Values) -> bool {
        match self {
            Held::Keys(keys) => keys.insert(key),
            Held::Records(records) => match records.entry(key) {
                Entry::Vacant(v) => {
                    v.insert(values());
                    true
                }
                Entry::Occupied(_) => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_keys_and_records_answer_alike() {
        let prints = Fingerprints::new();
        let (a, b) = (prints.of("C-1"), prints.of("C-2"));
        assert_eq!(a, prints.of("C-1"));
        assert_ne!(a, b);
        let mut keys = Held::with_capacity(0, 4);
        assert!(keys.hold(a, || Box::new([])));
        assert!(!keys.hold(a, || Box::new([])));
        assert!(keys.contains(a) && !keys.contains(b));
        assert_eq!(keys.get(a), Some(&[][..]));
        let mut records = Held::with_capacity(1, 4);
        assert!(records.hold(a, || Box::new([Some("C-9".into())])));
        assert!(!records.hold(a, || Box::new([Some("later".into())])));
        assert_eq!(records.get(a), Some(&[Some("C-9".to_string())][..]));
        assert_eq!(records.get(b), None);
    }
}
