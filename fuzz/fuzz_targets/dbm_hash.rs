//! The Berkeley DB page parser on arbitrary files: every record, and a
//! lookup, must end in records or an error (no panic, hang or blow-up).
#![no_main]

use legacy_dbm::hash::HashFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|file: &[u8]| {
    if let Ok(hf) = HashFile::parse(file) {
        if let Ok(records) = hf.records() {
            for (k, d) in records.iter().take(4) {
                assert_eq!(hf.get(k).ok().flatten().as_ref(), Some(d));
            }
        }
        let _ = hf.get(b"Version");
    }
});
