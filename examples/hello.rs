//! The smallest embedding: build a runtime, spawn a task, await it.
//!
//! Run: `cargo run --example hello`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = unplug::Runtime::new()?;
    let greeting = rt.block_on(async {
        let task = unplug::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            "hello from an unplug task"
        });
        task.await
    })?;
    println!("{greeting} ({} workers)", rt.workers().len());
    Ok(())
}
