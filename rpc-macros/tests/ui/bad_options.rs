#[rpc_core::service(name = "a.B", verison = "1.0")]
pub trait Misspelled {
    async fn ping(&self);
}

#[rpc_core::service(version = 1)]
pub trait NotAString {
    async fn ping(&self);
}

fn main() {}
