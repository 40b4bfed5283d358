#[rpc_core::service]
pub trait People {
    async fn a(&self, #[java_type = "com.example.Person"] p: String);
    async fn b(&self, #[java_type(1)] p: String);
    async fn c(&self, #[java_type = "Lcom/example/Person"] p: String);
}

fn main() {}
