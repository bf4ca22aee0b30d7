#[unplug::test]
#[::core::prelude::v1::test]
async fn twice_a_test() {}

fn main() {}
