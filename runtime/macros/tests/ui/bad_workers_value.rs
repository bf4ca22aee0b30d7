#[unplug::test(workers = 0)]
async fn zero() {}

#[unplug::test(workers = 2u8)]
async fn suffixed() {}

fn main() {}
