#[unplug::test(pin_workers = 1)]
async fn pinned() {}

fn main() {}
