#[rpc_core::service]
pub trait Events {
    #[oneway]
    async fn publish(&self, topic: String) -> bool;
    #[oneway]
    async fn fire(&self) -> Result<(), String>;
}

fn main() {}
