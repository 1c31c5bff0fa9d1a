//! The encrypted values and integrity records read from key4.db (PBES2,
//! the legacy PBE, PBMAC1) on arbitrary bytes: a parse fails cleanly or
//! gives a record that encodes and parses again to the same parameters.
//! Nothing is decrypted: that would run the record's own iteration count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use softoken::fuzzing::{Encrypted, MacRecord};

fuzz_target!(|blob: &[u8]| {
    let _ = Encrypted::parse(blob);
    if let Ok(record) = MacRecord::parse(blob) {
        let again = MacRecord::parse(&record.encode().expect("a parsed record encodes"))
            .expect("an encoded record parses");
        assert_eq!(again.mac, record.mac);
    }
});
