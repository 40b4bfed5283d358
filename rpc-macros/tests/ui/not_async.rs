#[rpc_core::service]
pub trait Greeter {
    fn greet(&self, name: String) -> String;
}

fn main() {}
