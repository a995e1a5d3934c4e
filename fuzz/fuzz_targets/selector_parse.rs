//! Fuzz target: the selector parser never panics, and whatever it accepts prints a canonical
//! form that re-parses to the same canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::Selector;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(sel) = Selector::parse(text) {
        let again = Selector::parse(sel.canonical()).expect("canonical form re-parses");
        assert_eq!(again.canonical(), sel.canonical());
        let _ = sel.matches(&std::collections::BTreeMap::<String, String>::new());
    }
});
