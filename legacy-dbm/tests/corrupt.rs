//! Each kind of damage the issue names gives its error: a truncated file, a
//! garbled one, an overflow chain that loops, a page number past the end,
//! and a length past the page.

use legacy_dbm::hash::{self, HashFile};
use legacy_dbm::Error;

const PAGE: usize = 4096;

/// A file whose one record is a big pair over overflow pages 4, 5 and 6
/// (page 3 is the bitmap; buckets are pages 1 and 2).
fn file() -> Vec<u8> {
    let records = vec![(b"a".to_vec(), vec![0x5a; 9000])];
    let f = hash::write(&records, PAGE, true).unwrap();
    assert_eq!(f.len(), 7 * PAGE);
    f
}

fn set_word(f: &mut [u8], page: usize, word: usize, value: u16) {
    let at = page * PAGE + 2 * word;
    f[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// The overflow address of overflow page `n` at split point 1.
fn addr(n: u16) -> u16 {
    (1 << 11) | n
}

fn error_of(f: &[u8]) -> String {
    match HashFile::parse(f).and_then(|h| h.records()) {
        Ok(r) => panic!("damage went unnoticed: {} records", r.len()),
        Err(Error::Corrupt(what)) => what,
        Err(other) => panic!("not a damage error: {other}"),
    }
}

#[test]
fn the_undamaged_file_reads() {
    let f = file();
    let r = HashFile::parse(&f).unwrap().records().unwrap();
    assert_eq!(r, vec![(b"a".to_vec(), vec![0x5a; 9000])]);
}

#[test]
fn truncated() {
    let f = file();
    assert!(error_of(&f[..5 * PAGE + 100]).contains("cut short"));
    assert!(error_of(&f[..5 * PAGE]).contains("past the end"));
    assert!(error_of(&f[..100]).contains("shorter than a hash file header"));
}

#[test]
fn garbled() {
    let mut f = file();
    f[0] ^= 0xff;
    assert!(error_of(&f).contains("bad magic"));
    let mut f = file();
    f[12..16].copy_from_slice(&1000u32.to_be_bytes());
    assert!(error_of(&f).contains("bad page size"));
}

#[test]
fn an_overflow_chain_that_loops() {
    let mut f = file();
    // Page 5's link (word 3) points back at page 4.
    set_word(&mut f, 5, 3, addr(2));
    assert!(error_of(&f).contains("loops"), "{}", error_of(&f));
}

#[test]
fn a_page_number_past_the_end() {
    let mut f = file();
    set_word(&mut f, 5, 3, addr(0x7ff));
    assert!(error_of(&f).contains("past the end"), "{}", error_of(&f));
}

#[test]
fn a_length_past_the_page() {
    let mut f = file();
    // The key chunk's offset on page 4 beyond the page.
    set_word(&mut f, 4, 1, 0xffff);
    assert!(
        error_of(&f).contains("outside the page"),
        "{}",
        error_of(&f)
    );
    let mut f = file();
    // An entry count that would run past the page.
    set_word(&mut f, 4, 0, 0x7fff);
    assert!(error_of(&f).contains("past the page"), "{}", error_of(&f));
}
