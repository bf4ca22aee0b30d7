#[unplug::main(workers = 2, worker_count = 2)]
async fn main() {}
