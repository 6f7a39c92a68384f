// `sqlx::migrate!` embeds the migration files at compile time, and cargo rebuilds a crate when
// its sources change, not when a file is added to `migrations/`: without this, a new
// migration is silently left out of the binary until something else changes
// (https://docs.rs/sqlx/latest/sqlx/macro.migrate.html, "Triggering Recompilation").
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
