//! The configuration file parser (`config check`, start, SIGHUP): any text is either
//! settings or one line of error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon reads the file with read_to_string: only UTF-8 gets to the parser.
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match ringwarden::fuzzing::config(src, 4096) {
        Ok(summary) => assert!(!summary.is_empty()),
        Err(e) => assert!(!e.contains('\n'), "error is not one line: {e:?}"),
    }
});
