#[unplug::test(workers = -1)]
async fn negative() {}

#[unplug::test(workers = 99999999999999999999999)]
async fn huge() {}

fn main() {}
