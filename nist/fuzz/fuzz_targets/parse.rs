#![no_main]
//! Any bytes: the reader returns a transaction or an error, never panics, and whatever it
//! returns can be written again without panicking.

use libfuzzer_sys::fuzz_target;
use tasjil_nist::Transaction;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Transaction::parse(data) {
        let _ = t.to_bytes();
    }
});
