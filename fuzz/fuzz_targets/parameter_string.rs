//! The parameter string NSS and p11-kit pass in C_Initialize's pReserved
//! (configdir, prefixes, flags, tokens=<...>): any text is a configuration
//! or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use softoken::fuzzing::Config;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let _ = Config::from_parameters(Some(&text));
});
