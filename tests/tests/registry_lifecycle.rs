//! Registration, unregistration and dead clients, against every registry (local always;
//! ZooKeeper and etcd when `RPC_TEST_ZOOKEEPER` / `RPC_TEST_ETCD` are set).

use rpc_tests::registry::{
    scenario_dead_client_disappears, scenario_register_then_unregister, Backend,
};

#[tokio::test]
async fn local_registration_seen_and_unregistration_seen() {
    if let Some(url) = Backend::Local.url() {
        scenario_register_then_unregister(url).await;
    }
}

#[tokio::test]
async fn zookeeper_registration_seen_and_unregistration_seen() {
    if let Some(url) = Backend::Zookeeper.url() {
        scenario_register_then_unregister(url).await;
    }
}

#[tokio::test]
async fn etcd_registration_seen_and_unregistration_seen() {
    if let Some(url) = Backend::Etcd.url() {
        scenario_register_then_unregister(url).await;
    }
}

#[tokio::test]
async fn local_dead_client_disappears_after_its_lease() {
    if let Some(url) = Backend::Local.url() {
        scenario_dead_client_disappears(url, Backend::Local.death_bound()).await;
    }
}

#[tokio::test]
async fn zookeeper_dead_client_disappears_with_its_session() {
    if let Some(url) = Backend::Zookeeper.url() {
        scenario_dead_client_disappears(url, Backend::Zookeeper.death_bound()).await;
    }
}

#[tokio::test]
async fn etcd_dead_client_disappears_after_its_lease() {
    if let Some(url) = Backend::Etcd.url() {
        scenario_dead_client_disappears(url, Backend::Etcd.death_bound()).await;
    }
}
