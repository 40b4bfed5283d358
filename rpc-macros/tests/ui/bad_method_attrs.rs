#[rpc_core::service]
pub trait Slow {
    #[timeout = "300ms"]
    async fn a(&self);
    #[timeout(0)]
    async fn b(&self);
    #[idempotent(true)]
    async fn c(&self);
    async fn new(&self);
    #[cfg(feature = "extra")]
    async fn d(&self);
}

fn main() {}
