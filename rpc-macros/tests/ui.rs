//! Compile-fail tests: each rule of `#[service]` reports at the offending tokens and says what
//! to write instead. Regenerate the expected output with `TRYBUILD=overwrite` and read it.

#[test]
fn service_macro_rejects_bad_input_with_spanned_fixes() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
