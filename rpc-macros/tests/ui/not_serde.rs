pub struct Opaque;

#[rpc_core::service]
pub trait Vault {
    async fn store(&self, item: Opaque) -> u64;
    async fn load(&self, id: u64) -> Opaque;
}

fn main() {}
