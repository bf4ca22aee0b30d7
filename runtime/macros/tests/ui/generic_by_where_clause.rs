#[unplug::test]
async fn generic_by_where()
where
    String: Clone,
{
}

fn main() {}
