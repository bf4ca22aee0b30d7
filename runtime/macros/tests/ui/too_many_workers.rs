#[unplug::main(workers = 100000)]
async fn main() {}
