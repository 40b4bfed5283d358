#[rpc_core::service]
pub trait Store {
    async fn put<T: serde::Serialize>(&self, value: T);
    async fn get(&self, key: String) -> String where Self: Sized;
}

fn main() {}
