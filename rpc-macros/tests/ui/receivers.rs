#[rpc_core::service]
pub trait Counter {
    async fn incr(&mut self, by: u64) -> u64;
    async fn close(self);
    async fn shared(self: std::sync::Arc<Self>);
}

fn main() {}
