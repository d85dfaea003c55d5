//! Migration from schema version 1 to 2, scaffolded by driftwood's
//! snapshot check. It is yours now: add the rows your app writes at
//! version 1 and check what version 2 must find.

use driftwood::migration::SchemaVerifier;

#[test]
fn upgrade_from_v1_to_v2() {
    let verifier = SchemaVerifier::<crate::History>::from_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemas"
    ))
    .unwrap();
    let conn = verifier.start_at(1).unwrap();
    verifier.migrate_and_validate(&conn, 2).unwrap();
}
