#[derive(Debug)]
struct MyError;

// `?` converts into the declared error type...
#[unplug::main]
async fn main() -> Result<(), MyError> {
    let _: u32 = "7".parse()?;
    Ok(())
}

// ...and a tail of the wrong type is reported where it is.
#[unplug::main(workers = 1)]
async fn count() -> u32 {
    "seven"
}
