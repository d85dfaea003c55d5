//! Compile errors of the derive macros: every case under `tests/compile_fail/`
//! must fail to compile with exactly its `.stderr`, which points at the
//! offending field or attribute. Regenerate with `TRYBUILD=overwrite` and
//! read each `.stderr` before committing it.

#[test]
fn derive_errors_point_at_the_offending_code() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
