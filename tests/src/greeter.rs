//! Providers and clients of the example `Greeter`, through the bootstrap, for end-to-end tests.

use rpc_core::bootstrap::{Consumer, ConsumerBuilder, Provider, RunningProvider};
use rpc_core::config::keys;
use rpc_core::config::ServiceConfig;
use rpc_examples::{GreeterClient, GreeterServer, SignedGreeter};

/// Starts a `Greeter` provider named `name` on a free port, registered in `registry`; a
/// graceful shutdown waits `shutdown_wait_ms` between unregistering and closing.
pub async fn provider(registry: &str, name: &str, shutdown_wait_ms: u64) -> RunningProvider {
    Provider::builder()
        .without_env()
        .application("test-provider")
        .registry(registry)
        .expect("registry url")
        .protocol("dubbo", 0)
        .param(keys::SHUTDOWN_WAIT, shutdown_wait_ms)
        .expect("key")
        .service(GreeterServer::new(SignedGreeter {
            name: name.to_string(),
        }))
        .start()
        .await
        .expect("provider starts")
}

/// A `Greeter` client through `registry` with reference `settings`. The `Consumer` is dropped
/// at once: the client must keep what it needs alive by itself.
pub async fn client(registry: &str, settings: ServiceConfig) -> GreeterClient {
    let builder = Consumer::builder()
        .application("test-consumer")
        .registry(registry)
        .expect("registry url");
    greeter(builder, settings).await
}

/// A `Greeter` client without a registry, calling the provider(s) of `direct` (the `url` key)
/// with reference `settings`.
pub async fn direct_client(direct: &str, settings: ServiceConfig) -> GreeterClient {
    greeter(
        Consumer::builder().no_registry(),
        settings.param(keys::URL, direct),
    )
    .await
}

/// The `Greeter` reference of `builder` (without the environment's settings).
async fn greeter(builder: ConsumerBuilder, settings: ServiceConfig) -> GreeterClient {
    builder
        .without_env()
        .reference_config("org.example.Greeter", settings)
        .build()
        .await
        .expect("consumer")
        .reference::<GreeterClient>()
        .await
        .expect("reference")
}

/// The provider name a `SignedGreeter` reply was signed with.
pub fn who(reply: &str) -> String {
    reply.rsplit("from ").next().unwrap_or_default().to_string()
}
