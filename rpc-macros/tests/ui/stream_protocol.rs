use rpc_core::Streaming;

#[rpc_core::service(name = "org.example.Counter", protocol = "dubbo")]
pub trait Counter {
    async fn count(&self, n: u32) -> Streaming<u32>;
    async fn sum(&self, xs: Streaming<i64>) -> i64;
    async fn fine(&self, n: u32) -> u32;
}

#[rpc_core::service(name = "org.example.Bad")]
pub trait Bad {
    async fn two(&self, xs: Streaming<i64>, label: String) -> i64;
    async fn wrapped(&self, n: u32) -> Result<Streaming<u32>, String>;
}

fn main() {}
