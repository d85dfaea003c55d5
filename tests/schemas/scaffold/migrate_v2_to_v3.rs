//! Migration from schema version 2 to 3, scaffolded by driftwood's
//! snapshot check. It is yours now: add the rows your app writes at
//! version 2 and check what version 3 must find.

use driftwood::migration::SchemaVerifier;

#[test]
fn upgrade_from_v2_to_v3() {
    let verifier = SchemaVerifier::<crate::History>::from_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemas"
    ))
    .unwrap();
    let conn = verifier.start_at(2).unwrap();
    verifier.migrate_and_validate(&conn, 3).unwrap();
}
