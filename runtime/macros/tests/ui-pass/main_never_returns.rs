//! `-> !`: the expansion binds no `!` (experimental in a `let`).
#[unplug::main(workers = 1)]
async fn main() -> ! {
    std::process::exit(0)
}
