//! `#[unplug::main]`: an `async fn main` on an unplug runtime with two
//! workers, without writing the builder by hand.
//!
//! Run: `cargo run --example macro_main`

#[unplug::main(workers = 2, thread_name = "macro-main")]
async fn main() -> Result<(), unplug::JoinError> {
    let task = unplug::spawn(async {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        std::thread::current().name().map(str::to_owned)
    });
    let ran_on = task.await?;
    let workers = unplug::Handle::current().workers().len();
    println!(
        "hello from #[unplug::main]: {workers} workers, the task ran on {}",
        ran_on.as_deref().unwrap_or("an unnamed thread")
    );
    Ok(())
}
