#[rpc_core::service]
pub trait Greeter {
    async fn greet(&self, name: String) -> String;
    async fn r#greet(&self) -> String;
}

fn main() {}
