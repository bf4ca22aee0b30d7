#[unplug::test]
#[test]
async fn twice_a_test() {}

fn main() {}
