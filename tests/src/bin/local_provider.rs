//! Test helper process: registers one provider URL in a `local://` registry, prints
//! `registered`, then keeps its lease alive until killed (at most 60 s).
//!
//! Usage: `local_provider REGISTRY_URL PROVIDER_URL`.

use std::time::Duration;

use rpc_core::registry::RegistryFactory;
use rpc_core::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(registry), Some(provider)) = (args.next(), args.next()) else {
        return Err("usage: local_provider REGISTRY_URL PROVIDER_URL".into());
    };
    let registry = Url::parse(&registry)?;
    let provider = Url::parse(&provider)?;
    let reg = rpc_core::extension::get::<dyn RegistryFactory>(registry.protocol())?
        .connect(&registry)
        .await?;
    reg.register(&provider).await?;
    println!("registered");
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}
