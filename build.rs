// `sqlx::migrate!` embeds the migrations when the crate compiles, and cargo
// does not otherwise know they are inputs: without this, a new migration
// file leaves the binary without it until some Rust source changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
