#[unplug::test(workers)]
async fn no_value() {}

#[unplug::test(workers = 1, workers = 2)]
async fn twice() {}

#[unplug::test(1)]
async fn not_named() {}

fn main() {}
