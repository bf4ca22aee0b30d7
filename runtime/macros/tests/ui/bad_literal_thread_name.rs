#[unplug::main(thread_name = my_app)]
async fn main() {}
