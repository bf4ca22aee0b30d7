#[unplug::test]
struct NotAFunction;

fn main() {}
