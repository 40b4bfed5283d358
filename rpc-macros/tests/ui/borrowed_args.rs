#[rpc_core::service]
pub trait Files {
    async fn open(&self, path: &str) -> u64;
    async fn write(&self, fd: u64, data: &[u8]) -> usize;
    async fn name(&self, fd: u64) -> std::borrow::Cow<'_, str>;
}

fn main() {}
