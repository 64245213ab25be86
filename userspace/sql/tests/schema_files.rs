//! `sql/<backend>/acct*.sql` are generated from the column model in `schema.rs`; this test
//! fails when they drift apart. `XACCT_BLESS=1 cargo test -p xacct-sql --test schema_files`
//! rewrites them.

use std::path::Path;

#[test]
fn sql_files_equal_the_column_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql");
    let bless = std::env::var("XACCT_BLESS").as_deref() == Ok("1");
    let mut stale = Vec::new();
    for (rel, text) in xacct_sql::schema::standard_files() {
        let path = root.join(&rel);
        if bless {
            std::fs::create_dir_all(path.parent().expect("sql/<backend>")).expect("mkdir");
            std::fs::write(&path, &text).expect("write sql file");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(rel);
        }
    }
    assert!(stale.is_empty(), "out of date (regenerate with XACCT_BLESS=1): {stale:?}");
}
