//! Berkeley DB 1.85 hash files, the container of NSS's cert8.db, key3.db
//! and secmod.db: read (every record, or one by key) with every page
//! reference checked, and written whole as a fresh file that NSS's dbm
//! reads and extends.
//!
//! Layout facts (docs/nss-db-format.md §2.1): a big-endian header
//! on page 0; bucket and overflow pages in the header's byte order, each an
//! array of 16-bit words: the entry count, the entry offsets, the free
//! space and the start of the data area. Pairs too big for a page (big
//! pairs) run over chains of overflow pages.

use std::collections::HashSet;

use crate::{Error, Result};

const MAGIC: u32 = 0x0006_1561;
const VERSION: u32 = 2;
const LITTLE_ENDIAN: u32 = 1234;
const BIG_ENDIAN: u32 = 4321;
/// Bytes of the header (its fields up to the end of the bitmap array).
const HEADER_LEN: usize = 260;
/// The string whose hash the header keeps, to check the hash function;
/// hashed with its terminating NUL.
const CHECK_KEY: &[u8] = b"%$sniglet^&\0";

const OVFLPAGE: u16 = 0;
const PARTIAL_KEY: u16 = 1;
const FULL_KEY: u16 = 2;
const FULL_KEY_DATA: u16 = 3;
const REAL_KEY: u16 = 4;

/// Overflow addresses: the split point in the top 5 bits, the page within
/// it in the low 11.
const SPLIT_SHIFT: u16 = 11;
const SPLIT_MASK: u16 = 0x7ff;

/// The hash of db 1.85 that NSS's dbm uses (Chris Torek's: h = h*33 + c).
pub fn hash(key: &[u8]) -> u32 {
    key.iter()
        .fold(0u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

/// The header fields this module uses or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub little_endian: bool,
    pub bsize: usize,
    pub bshift: u32,
    pub ovfl_point: u32,
    pub last_freed: u32,
    pub max_bucket: u32,
    pub high_mask: u32,
    pub low_mask: u32,
    pub ffactor: u32,
    pub nkeys: u32,
    pub hdrpages: u32,
    pub spares: [u32; 32],
    pub bitmaps: [u16; 32],
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn log2(n: u32) -> u32 {
    let mut i = 0;
    while i < 32 && (1u64 << i) < n as u64 {
        i += 1;
    }
    i
}

impl Header {
    fn parse(file: &[u8]) -> Result<Header> {
        if file.len() < HEADER_LEN {
            return Err(Error::corrupt("shorter than a hash file header"));
        }
        if be32(file, 0) != MAGIC {
            return Err(Error::corrupt("not a Berkeley DB hash file (bad magic)"));
        }
        if be32(file, 4) != VERSION {
            return Err(Error::corrupt(format!(
                "hash file version {} (only 2 is known)",
                be32(file, 4)
            )));
        }
        let little_endian = match be32(file, 8) {
            LITTLE_ENDIAN => true,
            BIG_ENDIAN => false,
            other => return Err(Error::corrupt(format!("bad byte order {other}"))),
        };
        let bsize = be32(file, 12) as usize;
        let bshift = be32(file, 16);
        if !(256..=32768).contains(&bsize) || bshift >= 32 || 1usize << bshift != bsize {
            return Err(Error::corrupt(format!("bad page size {bsize}")));
        }
        let mut spares = [0u32; 32];
        for (i, s) in spares.iter_mut().enumerate() {
            *s = be32(file, 68 + 4 * i);
        }
        let mut bitmaps = [0u16; 32];
        for (i, b) in bitmaps.iter_mut().enumerate() {
            *b = u16::from_be_bytes([file[196 + 2 * i], file[197 + 2 * i]]);
        }
        let header = Header {
            little_endian,
            bsize,
            bshift,
            ovfl_point: be32(file, 32),
            last_freed: be32(file, 36),
            max_bucket: be32(file, 40),
            high_mask: be32(file, 44),
            low_mask: be32(file, 48),
            ffactor: be32(file, 52),
            nkeys: be32(file, 56),
            hdrpages: be32(file, 60),
            spares,
            bitmaps,
        };
        if header.hdrpages == 0 || header.hdrpages > 16 {
            return Err(Error::corrupt("bad header page count"));
        }
        // Each bucket has a page, so more buckets than pages is damage
        // (and would make iteration run long over nothing).
        let pages = file.len().div_ceil(bsize) as u64;
        if header.max_bucket as u64 >= pages.max(1) * 64 || header.max_bucket > 1 << 24 {
            return Err(Error::corrupt("more buckets than the file can hold"));
        }
        Ok(header)
    }

    fn bucket_to_page(&self, bucket: u32) -> Result<u64> {
        let spare = if bucket == 0 {
            0
        } else {
            let i = log2(bucket + 1) as usize;
            *self
                .spares
                .get(i.wrapping_sub(1))
                .ok_or_else(|| Error::corrupt("bucket past the split table"))?
        };
        Ok(bucket as u64 + self.hdrpages as u64 + spare as u64)
    }

    fn overflow_to_page(&self, addr: u16) -> Result<u64> {
        let split = (addr >> SPLIT_SHIFT) as u32;
        let offset = (addr & SPLIT_MASK) as u64;
        let first = (1u64 << split) - 1;
        Ok(self.bucket_to_page(first as u32)? + offset)
    }

    fn bucket_of(&self, key: &[u8]) -> u32 {
        let h = hash(key);
        let b = h & self.high_mask;
        if b > self.max_bucket {
            b & self.low_mask
        } else {
            b
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut put = |at: usize, v: u32| out[at..at + 4].copy_from_slice(&v.to_be_bytes());
        put(0, MAGIC);
        put(4, VERSION);
        put(
            8,
            if self.little_endian {
                LITTLE_ENDIAN
            } else {
                BIG_ENDIAN
            },
        );
        put(12, self.bsize as u32);
        put(16, self.bshift);
        put(20, 256); // directory size
        put(24, 256); // segment size
        put(28, 8); // segment shift
        put(32, self.ovfl_point);
        put(36, self.last_freed);
        put(40, self.max_bucket);
        put(44, self.high_mask);
        put(48, self.low_mask);
        put(52, self.ffactor);
        put(56, self.nkeys);
        put(60, self.hdrpages);
        put(64, hash(CHECK_KEY));
        for (i, s) in self.spares.iter().enumerate() {
            put(68 + 4 * i, *s);
        }
        for (i, b) in self.bitmaps.iter().enumerate() {
            out[196 + 2 * i..198 + 2 * i].copy_from_slice(&b.to_be_bytes());
        }
    }
}

/// One page seen as its 16-bit words.
struct Page<'a> {
    bytes: &'a [u8],
    little_endian: bool,
}

impl Page<'_> {
    fn word(&self, i: usize) -> Result<u16> {
        let at = i * 2;
        let b = self
            .bytes
            .get(at..at + 2)
            .ok_or_else(|| Error::corrupt("page index past the page"))?;
        Ok(if self.little_endian {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    }

    fn count(&self) -> Result<usize> {
        let n = self.word(0)? as usize;
        // The entries and the two trailing words must fit in the page.
        if (n + 3) * 2 > self.bytes.len() {
            return Err(Error::corrupt("page entry count past the page"));
        }
        Ok(n)
    }

    fn slice(&self, from: u16, to: usize) -> Result<&[u8]> {
        let from = from as usize;
        if from > to || to > self.bytes.len() {
            return Err(Error::corrupt("entry offsets outside the page"));
        }
        Ok(&self.bytes[from..to])
    }
}

/// A hash file opened for reading.
pub struct HashFile<'a> {
    file: &'a [u8],
    pub header: Header,
}

impl<'a> HashFile<'a> {
    pub fn parse(file: &'a [u8]) -> Result<HashFile<'a>> {
        Ok(HashFile {
            header: Header::parse(file)?,
            file,
        })
    }

    /// A page. A bucket page past the end of the file is empty (db writes
    /// pages only once they hold something); any other is damage.
    fn page(&self, number: u64, bucket_page: bool) -> Result<Page<'a>> {
        let bsize = self.header.bsize as u64;
        let little_endian = self.header.little_endian;
        let start = number.saturating_mul(bsize);
        if start >= self.file.len() as u64 {
            if bucket_page {
                return Ok(Page {
                    bytes: &[0, 0, 0, 0, 0, 0],
                    little_endian,
                });
            }
            return Err(Error::corrupt(format!(
                "page {number} is past the end of the file"
            )));
        }
        let end = start + bsize;
        if end > self.file.len() as u64 {
            return Err(Error::corrupt(format!("page {number} is cut short")));
        }
        Ok(Page {
            bytes: &self.file[start as usize..end as usize],
            little_endian,
        })
    }

    /// Follows an overflow address, refusing a page already seen (a loop,
    /// or two chains sharing a page).
    fn follow(&self, addr: u16, seen: &mut HashSet<u64>) -> Result<(u64, Page<'a>)> {
        let number = self.header.overflow_to_page(addr)?;
        if number < self.header.hdrpages as u64 || !seen.insert(number) {
            return Err(Error::corrupt(format!(
                "overflow chain loops or crosses at page {number}"
            )));
        }
        Ok((number, self.page(number, false)?))
    }

    /// Reads a big pair that starts at index 1 of `page`; returns it and
    /// the pair's last page.
    fn big_pair(
        &self,
        mut page: Page<'a>,
        seen: &mut HashSet<u64>,
    ) -> Result<(Vec<u8>, Vec<u8>, Page<'a>)> {
        let bsize = self.header.bsize;
        let mut key = Vec::new();
        loop {
            let n = page.count()?;
            if n < 2 {
                return Err(Error::corrupt("big pair page without its entries"));
            }
            key.extend_from_slice(page.slice(page.word(1)?, bsize)?);
            match page.word(2)? {
                PARTIAL_KEY => {
                    if n < 4 {
                        return Err(Error::corrupt("partial key without a next page"));
                    }
                    page = self.follow(page.word(n - 1)?, seen)?.1;
                }
                FULL_KEY | FULL_KEY_DATA => break,
                _ => return Err(Error::corrupt("bad big pair page kind")),
            }
        }
        let n = page.count()?;
        let free = page.word(n + 1)?;
        let mut data = Vec::new();
        if page.word(2)? == FULL_KEY_DATA {
            if n < 3 {
                return Err(Error::corrupt("big pair data offset missing"));
            }
            let chunk = page.slice(page.word(n)?, page.word(1)? as usize)?;
            data.extend_from_slice(chunk);
            if free > 0 {
                return Ok((key, data, page));
            }
        }
        loop {
            let n = page.count()?;
            if n < 4 {
                return Err(Error::corrupt("big pair data without a next page"));
            }
            page = self.follow(page.word(n - 1)?, seen)?.1;
            if page.count()? < 2 {
                return Err(Error::corrupt("big pair data page without its entries"));
            }
            data.extend_from_slice(page.slice(page.word(1)?, bsize)?);
            if page.word(2)? == FULL_KEY_DATA {
                return Ok((key, data, page));
            }
            if data.len() > self.file.len() {
                return Err(Error::corrupt("big pair longer than the file"));
            }
        }
    }

    /// Every (key, data) pair of one bucket.
    fn bucket(
        &self,
        bucket: u32,
        seen: &mut HashSet<u64>,
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        let bsize = self.header.bsize;
        let number = self.header.bucket_to_page(bucket)?;
        if !seen.insert(number) {
            return Err(Error::corrupt(format!(
                "bucket {bucket} shares page {number}"
            )));
        }
        let mut page = self.page(number, true)?;
        let mut i = 1;
        loop {
            let n = page.count()?;
            if n == 0 || i > n {
                return Ok(());
            }
            if i + 1 > n {
                return Err(Error::corrupt("odd entry count"));
            }
            let second = page.word(i + 1)?;
            if second == OVFLPAGE {
                page = self.follow(page.word(i)?, seen)?.1;
                i = 1;
                continue;
            }
            if second < REAL_KEY {
                if i != 1 {
                    return Err(Error::corrupt("big pair not at the start of its page"));
                }
                let (key, data, last) = self.big_pair(page, seen)?;
                out.push((key, data));
                let m = last.count()?;
                if m <= 2 {
                    return Ok(());
                }
                page = self.follow(last.word(m - 1)?, seen)?.1;
                i = 1;
                continue;
            }
            let key_end = if i == 1 {
                bsize
            } else {
                page.word(i - 1)? as usize
            };
            let key_off = page.word(i)?;
            let key = page.slice(key_off, key_end)?;
            let data = page.slice(second, key_off as usize)?;
            out.push((key.to_vec(), data.to_vec()));
            i += 2;
        }
    }

    /// Every record, bucket by bucket. Each must sit in the bucket its key
    /// hashes to (else no lookup would find it), keys must be unique, and
    /// the header's record count must agree.
    pub fn records(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for bucket in 0..=self.header.max_bucket {
            let start = out.len();
            self.bucket(bucket, &mut seen, &mut out)?;
            if out[start..]
                .iter()
                .any(|(k, _)| self.header.bucket_of(k) != bucket)
            {
                return Err(Error::corrupt(format!(
                    "a record of bucket {bucket} hashes elsewhere"
                )));
            }
        }
        let mut keys = HashSet::new();
        if !out.iter().all(|(k, _)| keys.insert(k.as_slice())) {
            return Err(Error::corrupt("a key is stored twice"));
        }
        if out.len() != self.header.nkeys as usize {
            return Err(Error::corrupt(format!(
                "the header counts {} records, the pages hold {}",
                self.header.nkeys,
                out.len()
            )));
        }
        Ok(out)
    }

    /// The record with this key, looking only in its bucket.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        self.bucket(self.header.bucket_of(key), &mut seen, &mut out)?;
        Ok(out.into_iter().find(|(k, _)| k == key).map(|(_, d)| d))
    }
}

// ---- writing ----

/// A page being filled, as db fills one.
struct PageBuf {
    words: Vec<u16>,
    data: Vec<u8>,
    bsize: usize,
    /// Holds part of a big pair: no ordinary pair may follow on it.
    big: bool,
}

impl PageBuf {
    fn new(bsize: usize) -> PageBuf {
        PageBuf {
            words: Vec::new(),
            data: Vec::new(),
            bsize,
            big: false,
        }
    }

    /// The offset where the data area starts (data grows down from bsize).
    fn offset(&self) -> usize {
        self.bsize - self.data.len()
    }

    /// Bytes still free between the word array (plus its two trailing
    /// words) and the data area.
    fn free(&self) -> usize {
        self.offset().saturating_sub((self.words.len() + 3) * 2)
    }

    /// Puts bytes at the bottom of the free area; returns their offset.
    fn push_data(&mut self, bytes: &[u8]) -> u16 {
        let mut data = bytes.to_vec();
        data.extend_from_slice(&self.data);
        self.data = data;
        self.offset() as u16
    }

    fn pair_fits(&self, key: &[u8], data: &[u8]) -> bool {
        // Room for the pair, its two words, and two more for an overflow link.
        !self.big && key.len() + data.len() + 4 + 4 <= self.free()
    }

    fn put_pair(&mut self, key: &[u8], data: &[u8]) {
        let k = self.push_data(key);
        let d = self.push_data(data);
        self.words.push(k);
        self.words.push(d);
    }

    fn link(&mut self, addr: u16) {
        self.words.push(addr);
        self.words.push(OVFLPAGE);
    }

    fn render(&self, little_endian: bool) -> Vec<u8> {
        let mut out = vec![0u8; self.bsize];
        let mut words = vec![self.words.len() as u16];
        words.extend_from_slice(&self.words);
        words.push(self.free() as u16);
        // db keeps the start of the data area in 16 bits; a full 64 KiB
        // page is not made here (NSS uses 16 KiB at most).
        words.push(self.offset() as u16);
        for (i, w) in words.iter().enumerate() {
            let b = if little_endian {
                w.to_le_bytes()
            } else {
                w.to_be_bytes()
            };
            out[2 * i..2 * i + 2].copy_from_slice(&b);
        }
        let off = self.offset();
        out[off..].copy_from_slice(&self.data);
        out
    }
}

/// The page store of a file being written: bucket pages, then overflow
/// pages, addressed as db addresses them at one split point.
struct Writer {
    bsize: usize,
    split: u32,
    buckets: Vec<PageBuf>,
    /// Overflow pages 2.. (page 1 of the split point is the bitmap).
    overflow: Vec<PageBuf>,
}

impl Writer {
    /// A new overflow page; returns its index and address.
    fn new_overflow(&mut self) -> Result<(usize, u16)> {
        self.overflow.push(PageBuf::new(self.bsize));
        // Overflow page numbers start at 1 (the bitmap); ours from 2.
        let number = self.overflow.len() + 1;
        if number > SPLIT_MASK as usize {
            return Err(Error::TooLarge);
        }
        Ok((
            self.overflow.len() - 1,
            ((self.split as u16) << SPLIT_SHIFT) | number as u16,
        ))
    }

    fn page_mut(&mut self, at: Option<usize>, bucket: usize) -> &mut PageBuf {
        match at {
            Some(i) => &mut self.overflow[i],
            None => &mut self.buckets[bucket],
        }
    }

    /// Adds a pair to a bucket whose chain ends at `last`, as db's insert
    /// does: on the last page if it fits, else on a new overflow page, or
    /// as a big pair over several when no page can hold it.
    fn insert(
        &mut self,
        bucket: usize,
        last: &mut Option<usize>,
        key: &[u8],
        data: &[u8],
    ) -> Result<()> {
        if self.page_mut(*last, bucket).pair_fits(key, data) {
            self.page_mut(*last, bucket).put_pair(key, data);
            return Ok(());
        }
        let (i, addr) = self.new_overflow()?;
        self.page_mut(*last, bucket).link(addr);
        *last = Some(i);
        if self.overflow[i].pair_fits(key, data) {
            self.overflow[i].put_pair(key, data);
            return Ok(());
        }
        self.big_insert(last, key, data)
    }

    /// A big pair from the empty page `last` on: key chunks each followed
    /// by a link, data on the key's last page when room remains, then data
    /// pages, the last marked FULL_KEY_DATA.
    fn big_insert(&mut self, last: &mut Option<usize>, key: &[u8], data: &[u8]) -> Result<()> {
        // Room for a chunk: the page less its four words, the link and the
        // trailing words (db's BIGOVERHEAD).
        let overhead = 4 * 2 + 2 * 2;
        let mut key_rest = key;
        let mut data_rest = data;
        let mut page = last.expect("a big pair starts on an overflow page");
        while !key_rest.is_empty() {
            let space = self.overflow[page].free().saturating_sub(overhead);
            if space == 0 {
                return Err(Error::TooLarge);
            }
            let take = space.min(key_rest.len());
            self.overflow[page].big = true;
            let off = self.overflow[page].push_data(&key_rest[..take]);
            key_rest = &key_rest[take..];
            self.overflow[page]
                .words
                .extend_from_slice(&[off, PARTIAL_KEY]);
            let (next, addr) = self.new_overflow()?;
            self.overflow[page].link(addr);
            if key_rest.is_empty() {
                let room = self.overflow[page].free();
                // Data shares the key's last page when it all fits with a
                // byte to spare (free space then says "ends here"), or
                // overflows it exactly (no free space: "continues").
                if !data_rest.is_empty() && room > 0 && data_rest.len() != room {
                    let take = data_rest.len().min(room);
                    let off = self.overflow[page].push_data(&data_rest[..take]);
                    data_rest = &data_rest[take..];
                    let words = &mut self.overflow[page].words;
                    let n = words.len();
                    words[n - 1] = off; // the data offset replaces OVFLPAGE
                    words[1] = FULL_KEY_DATA;
                } else {
                    self.overflow[page].words[1] = FULL_KEY;
                }
            }
            page = next;
        }
        let key_page_held_all = data_rest.is_empty();
        if key_page_held_all {
            // The empty page after the key ends the chain for now.
            *last = Some(page);
            return Ok(());
        }
        loop {
            let space = self.overflow[page].free().saturating_sub(overhead);
            if space == 0 {
                return Err(Error::TooLarge);
            }
            let take = space.min(data_rest.len());
            self.overflow[page].big = true;
            let off = self.overflow[page].push_data(&data_rest[..take]);
            data_rest = &data_rest[take..];
            if data_rest.is_empty() {
                self.overflow[page]
                    .words
                    .extend_from_slice(&[off, FULL_KEY_DATA]);
                *last = Some(page);
                return Ok(());
            }
            self.overflow[page]
                .words
                .extend_from_slice(&[off, FULL_KEY]);
            let (next, addr) = self.new_overflow()?;
            self.overflow[page].link(addr);
            page = next;
        }
    }
}

/// Page size for a new file of this kind (NSS: 16 KiB for cert8.db, 4 KiB
/// for key3.db and secmod.db).
pub const CERT_DB_PAGE: usize = 16384;
pub const KEY_DB_PAGE: usize = 4096;

/// Writes a complete hash file holding `records` (keys must be unique).
/// Buckets are as many as it takes for ordinary pairs to share no page
/// with an overflow; pairs bigger than a page become big pairs.
pub fn write(records: &[(Vec<u8>, Vec<u8>)], bsize: usize, little_endian: bool) -> Result<Vec<u8>> {
    assert!(bsize.is_power_of_two() && (256..=32768).contains(&bsize));
    let mut unique = HashSet::new();
    if !records.iter().all(|(k, _)| unique.insert(k.as_slice())) {
        return Err(Error::corrupt("duplicate keys"));
    }
    let mut split = 1u32;
    loop {
        let nbuckets = 1usize << split;
        let mut load = vec![0usize; nbuckets];
        let page_room = bsize - 3 * 2 - 4;
        let mut fits = true;
        for (k, d) in records {
            let size = k.len() + d.len() + 4;
            if size > page_room {
                continue; // a big pair goes to overflow pages anyway
            }
            let b = (hash(k) as usize) & (nbuckets - 1);
            load[b] += size;
            fits &= load[b] <= page_room;
        }
        if fits || split >= 16 {
            return write_with(records, bsize, little_endian, split);
        }
        split += 1;
    }
}

fn write_with(
    records: &[(Vec<u8>, Vec<u8>)],
    bsize: usize,
    little_endian: bool,
    split: u32,
) -> Result<Vec<u8>> {
    let nbuckets = 1usize << split;
    let mut w = Writer {
        bsize,
        split,
        buckets: (0..nbuckets).map(|_| PageBuf::new(bsize)).collect(),
        overflow: Vec::new(),
    };
    let mut last: Vec<Option<usize>> = vec![None; nbuckets];
    for (k, d) in records {
        let b = (hash(k) as usize) & (nbuckets - 1);
        w.insert(b, &mut last[b], k, d)?;
    }
    // Overflow pages in use: the bitmap (1) and ours (2..).
    let used = 1 + w.overflow.len() as u32;
    let mut spares = [0u32; 32];
    spares[split as usize] = used.max(split + 1);
    spares[split as usize + 1] = spares[split as usize];
    let bitmap_addr = ((split as u16) << SPLIT_SHIFT) | 1;
    let mut bitmaps = [0u16; 32];
    bitmaps[0] = bitmap_addr;
    let header = Header {
        little_endian,
        bsize,
        bshift: bsize.trailing_zeros(),
        ovfl_point: split,
        last_freed: 2,
        max_bucket: nbuckets as u32 - 1,
        high_mask: (nbuckets as u32) * 2 - 1,
        low_mask: nbuckets as u32 - 1,
        // db's "not yet chosen": it settles the fill factor itself when it
        // next adds an overflow page.
        ffactor: 65536,
        nkeys: records.len() as u32,
        hdrpages: 1,
        spares,
        bitmaps,
    };
    // Page 0 header, buckets, then the split point's overflow pages: the
    // bitmap first.
    let total_pages = 1 + nbuckets + 1 + w.overflow.len();
    let mut file = vec![0u8; total_pages * bsize];
    header.encode(&mut file[..HEADER_LEN]);
    for (i, page) in w.buckets.iter().enumerate() {
        let at = (1 + i) * bsize;
        file[at..at + bsize].copy_from_slice(&page.render(little_endian));
    }
    // The bitmap: a bit per overflow page, set for pages in use; bits past
    // the allocated ones are set too, as db leaves them.
    let bitmap_at = (1 + nbuckets) * bsize;
    let allocated = spares[split as usize] as usize;
    let mut words = vec![u32::MAX; bsize / 4];
    for bit in 0..allocated.min(bsize * 8) {
        let used_bit = bit < used as usize;
        let word = &mut words[bit / 32];
        if used_bit {
            *word |= 1 << (bit % 32);
        } else {
            *word &= !(1 << (bit % 32));
        }
    }
    for (i, word) in words.iter().enumerate() {
        let b = if little_endian {
            word.to_le_bytes()
        } else {
            word.to_be_bytes()
        };
        file[bitmap_at + 4 * i..bitmap_at + 4 * i + 4].copy_from_slice(&b);
    }
    for (i, page) in w.overflow.iter().enumerate() {
        let at = (1 + nbuckets + 1 + i) * bsize;
        file[at..at + bsize].copy_from_slice(&page.render(little_endian));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_one_nss_files_check() {
        assert_eq!(hash(CHECK_KEY), 2_507_046_371);
    }

    fn sorted(mut v: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
        v.sort();
        v
    }

    #[test]
    fn written_files_read_back_in_both_byte_orders() {
        let mut records: Vec<(Vec<u8>, Vec<u8>)> = (0..300u32)
            .map(|i| {
                (
                    format!("key-{i}").into_bytes(),
                    vec![i as u8; (i as usize * 37) % 900],
                )
            })
            .collect();
        // Big pairs: data past a page, a key past a page, both.
        records.push((
            b"big-data".to_vec(),
            (0..10_000u32).map(|i| i as u8).collect(),
        ));
        records.push((vec![7u8; 5000], b"big key".to_vec()));
        records.push((vec![9u8; 6000], vec![3u8; 9000]));
        records.push((b"exactly".to_vec(), vec![1u8; 4096 - 20]));
        for little in [true, false] {
            let file = write(&records, 4096, little).unwrap();
            let hf = HashFile::parse(&file).unwrap();
            assert_eq!(sorted(hf.records().unwrap()), sorted(records.clone()));
            for (k, d) in &records {
                assert_eq!(hf.get(k).unwrap().as_ref(), Some(d));
            }
            assert_eq!(hf.get(b"absent").unwrap(), None);
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic_or_a_hang() {
        let records: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"a".to_vec(), vec![1; 9000]),
            (b"b".to_vec(), b"x".to_vec()),
        ];
        let file = write(&records, 4096, true).unwrap();
        // Every single-byte change and every truncation.
        for at in 0..file.len() {
            for delta in [1u8, 0x80, 0xff] {
                let mut bad = file.clone();
                bad[at] = bad[at].wrapping_add(delta);
                if let Ok(hf) = HashFile::parse(&bad) {
                    let _ = hf.records();
                    let _ = hf.get(b"a");
                }
            }
        }
        for len in 0..file.len() {
            if let Ok(hf) = HashFile::parse(&file[..len]) {
                let _ = hf.records();
            }
        }
        // A chain that points back at itself.
        let hf = HashFile::parse(&file).unwrap();
        assert!(hf.records().is_ok());
    }
}
