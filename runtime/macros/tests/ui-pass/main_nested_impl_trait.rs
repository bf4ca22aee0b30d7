//! An `impl Trait` inside the return type: the expansion binds no type a
//! `let` cannot name.
#[unplug::main(workers = 1)]
async fn main() -> Result<(), impl std::fmt::Debug> {
    let ok: Result<(), String> = Ok(());
    ok
}
