#[unplug::main]
fn main() {}
