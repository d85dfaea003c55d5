//! Migration from schema version 3 to 4, scaffolded by driftwood's
//! snapshot check. It is yours now: add the rows your app writes at
//! version 3 and check what version 4 must find.

use driftwood::migration::SchemaVerifier;

#[test]
fn upgrade_from_v3_to_v4() {
    let verifier = SchemaVerifier::<crate::History>::from_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemas"
    ))
    .unwrap();
    let conn = verifier.start_at(3).unwrap();
    verifier.migrate_and_validate(&conn, 4).unwrap();
}
