#[unplug::test(workers = 1)]
fn not_async() {}

fn main() {}
