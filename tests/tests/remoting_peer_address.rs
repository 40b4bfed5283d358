//! The provider learns the caller's address from the transport, never from the caller.

use std::sync::Arc;

use rpc_core::context::REMOTE_ADDRESS_ATTACHMENT;
use rpc_core::{Invocation, Invoker, Response, Result, Url, Value};
use rpc_tests::{call, dubbo, INTERFACE, VERSION};

struct WhoCalls(Url);

#[async_trait::async_trait]
impl Invoker for WhoCalls {
    fn url(&self) -> &Url {
        &self.0
    }
    async fn invoke(&self, inv: Invocation) -> Result<Response> {
        let peer = inv
            .attachments()
            .get(REMOTE_ADDRESS_ATTACHMENT)
            .map(str::to_string);
        Ok(Response::value(Value::typed(peer)))
    }
}

#[tokio::test]
async fn provider_sees_the_transport_peer_even_if_the_caller_claims_another() {
    let url = Url::parse(&format!(
        "dubbo://127.0.0.1:0/{INTERFACE}?version={VERSION}"
    ))
    .expect("url");
    let exporter = dubbo()
        .export(url.clone(), Arc::new(WhoCalls(url.clone())))
        .await
        .expect("export");
    let port = exporter.url().port().expect("port");
    let invoker = dubbo().refer(url.with_port(port)).await.expect("refer");
    let mut inv = call("who", Value::Empty);
    inv.attachments_mut()
        .insert(REMOTE_ADDRESS_ATTACHMENT, "10.9.9.9:1");
    let peer: Option<String> = invoker
        .invoke(inv)
        .await
        .expect("call")
        .into_value()
        .expect("decode");
    let peer = peer.expect("set by the provider");
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    assert_ne!(peer, "10.9.9.9:1");
    exporter.unexport().await;
}
