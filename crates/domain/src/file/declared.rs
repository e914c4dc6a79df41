//! Counts a workbook declares about itself, checked before the spreadsheet
//! reader trusts them. The reader reserves memory for as many shared texts
//! as the shared-text part's `uniqueCount` says, so a file of a few hundred
//! bytes declaring billions would make the allocation fail and abort the
//! process. A declared count is refused when the part is too short to hold
//! that many texts (each takes at least one byte of XML), which keeps what
//! the reader reserves proportional to the file's real content.

use std::io::{self, Read, Seek, SeekFrom};

const ATTRIBUTE: &[u8] = b"uniqueCount";
/// Bytes after the attribute's name that its value can reach: `="` and up
/// to 20 digits, with room for spaces.
const VALUE_REACH: usize = 40;

/// A declared count that the workbook's content cannot back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverDeclared {
    pub part: String,
    pub declared: u64,
    pub bytes: u64,
}

/// Checks every shared-text part of the zip in `input` (found by name, as
/// the reader finds it: any folder, any case), then rewinds `input`. A file
/// that is no zip passes: the reader reports it.
pub fn check_shared_strings<R: Read + Seek>(input: &mut R) -> io::Result<Option<OverDeclared>> {
    let found = match zip::ZipArchive::new(&mut *input) {
        Ok(mut archive) => over_declared(&mut archive)?,
        Err(_) => None,
    };
    input.seek(SeekFrom::Start(0))?;
    Ok(found)
}

fn over_declared<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
) -> io::Result<Option<OverDeclared>> {
    for i in 0..archive.len() {
        let Ok(mut part) = archive.by_index(i) else {
            continue;
        };
        let Ok(part_name) = part.name().map(|n| n.into_owned()) else {
            continue;
        };
        let name = part_name.replace('\\', "/").to_ascii_lowercase();
        if !name.ends_with("sharedstrings.xml") {
            continue;
        }
        // A part that cannot be read is the reader's to report.
        let Ok((declared, bytes)) = largest_declared(&mut part) else {
            continue;
        };
        if declared > bytes {
            return Ok(Some(OverDeclared {
                part: part_name,
                declared,
                bytes,
            }));
        }
    }
    Ok(None)
}

/// Streams `part` once: the largest `uniqueCount` value in it (0 without
/// one) and its length in bytes.
fn largest_declared(part: &mut impl Read) -> io::Result<(u64, u64)> {
    let mut window = Vec::with_capacity(64 * 1024 + VALUE_REACH + ATTRIBUTE.len());
    let mut chunk = vec![0u8; 64 * 1024];
    let (mut largest, mut bytes) = (0u64, 0u64);
    loop {
        let n = part.read(&mut chunk)?;
        bytes += n as u64;
        window.extend_from_slice(&chunk[..n]);
        let at_end = n == 0;
        // Matches starting here or later, whose value may continue past the
        // window, wait for the next read.
        let settled = if at_end {
            window.len()
        } else {
            window.len().saturating_sub(VALUE_REACH + ATTRIBUTE.len())
        };
        let mut start = 0;
        while let Some(at) = find(&window[start..], ATTRIBUTE).map(|at| start + at) {
            if at >= settled {
                break;
            }
            let value = at + ATTRIBUTE.len();
            largest = largest.max(value_after(&window[value..]));
            start = value;
        }
        if at_end {
            return Ok((largest, bytes));
        }
        window.drain(..settled);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The number in `="123"` (spaces and either quote allowed), saturating.
fn value_after(rest: &[u8]) -> u64 {
    let rest = rest.get(..VALUE_REACH).unwrap_or(rest);
    let mut digits = rest
        .iter()
        .skip_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'=' | b'"' | b'\''))
        .take_while(|b| b.is_ascii_digit());
    digits
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_declared_count_is_found_across_reads() {
        let mut xml = b"<?xml version=\"1.0\"?><sst count=\"3\" uniqueCount = '12'>".to_vec();
        xml.extend(std::iter::repeat_n(b'x', 64 * 1024 - 20));
        xml.extend_from_slice(b"<sst uniqueCount=\"4294967296\"/>");
        let (declared, bytes) = largest_declared(&mut &xml[..]).unwrap();
        assert_eq!(declared, 4_294_967_296);
        assert_eq!(bytes, xml.len() as u64);
        assert_eq!(value_after(b"=\"99999999999999999999999\""), u64::MAX);
        assert_eq!(largest_declared(&mut &b"<sst>"[..]).unwrap(), (0, 5));
        // Split across two reads of a reader that returns a few bytes at a time.
        let xml = b"<sst count=\"1\" uniqueCount=\"4000000000000\"><si><t>a</t></si></sst>";
        for split in 1..xml.len() {
            let mut two = (&xml[..split]).chain(&xml[split..]);
            assert_eq!(
                largest_declared(&mut two).unwrap().0,
                4_000_000_000_000,
                "{split}"
            );
        }
    }
}
