#[rpc_core::service]
pub trait Clock {
    async fn now() -> u64;
    async fn at(zone: String) -> u64;
}

fn main() {}
