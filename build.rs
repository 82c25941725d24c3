//! `embed_migrations!` reads `migrations/` at compile time, and cargo does not
//! watch a folder by itself: without this, a new migration is left out of an
//! incremental build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
