//! Registration, unregistration, dead clients and the list of services, against every
//! registry (local always; ZooKeeper, etcd and Nacos when `RPC_TEST_ZOOKEEPER` /
//! `RPC_TEST_ETCD` / `RPC_TEST_NACOS` are set).

use std::time::Duration;

use rpc_registry_etcd::client::{prefix_end, EtcdClient};
use rpc_tests::registry::{
    client, scenario_dead_client_disappears, scenario_register_then_unregister,
    scenario_services_lists_registered_interfaces, unique, Backend,
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
async fn nacos_registration_seen_and_unregistration_seen() {
    if let Some(url) = Backend::Nacos.url() {
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

#[tokio::test]
async fn nacos_dead_client_disappears_after_its_heartbeats_stop() {
    if let Some(url) = Backend::Nacos.url() {
        scenario_dead_client_disappears(url, Backend::Nacos.death_bound()).await;
    }
}

#[tokio::test]
async fn local_services_lists_interfaces_with_a_registration() {
    if let Some(url) = Backend::Local.url() {
        scenario_services_lists_registered_interfaces(url).await;
    }
}

#[tokio::test]
async fn zookeeper_services_lists_interfaces_with_a_registration() {
    if let Some(url) = Backend::Zookeeper.url() {
        scenario_services_lists_registered_interfaces(url).await;
    }
}

#[tokio::test]
async fn etcd_services_lists_interfaces_with_a_registration() {
    if let Some(url) = Backend::Etcd.url() {
        scenario_services_lists_registered_interfaces(url).await;
    }
}

#[tokio::test]
async fn nacos_services_lists_interfaces_with_a_registration() {
    if let Some(url) = Backend::Nacos.url() {
        scenario_services_lists_registered_interfaces(url).await;
    }
}

/// etcd: `services` reads keys in pages and jumps past each interface it finds, so an
/// interface with more keys than a page (1,000) is listed once, the interface after it is
/// still found, and keys outside the `{interface}/{category}/{name}` layout are ignored.
#[tokio::test]
async fn etcd_services_pages_past_interfaces_with_many_keys() {
    let Some(address) = Backend::Etcd.address() else {
        return;
    };
    let namespace = unique("ns");
    let root = format!("/{namespace}");
    let raw = EtcdClient::connect(&[format!("http://{address}")], Duration::from_secs(5), None)
        .await
        .expect("etcd client");
    let many = unique("org.example.Many");
    let after = unique("org.example.ZAfter");
    let keys: Vec<String> = (0..1200)
        .map(|i| format!("{root}/{many}/providers/k{i:04}"))
        .chain([
            format!("{root}/{}/bogus/x", unique("org.example.AOutside")),
            format!("{root}/{after}/consumers/c"),
            format!("{root}/stray"),
        ])
        .collect();
    for chunk in keys.chunks(100) {
        raw.put_all(chunk.iter().map(|k| (k.clone().into_bytes(), Vec::new())))
            .await
            .expect("put keys");
    }

    let operator = client(&Backend::Etcd.url_at(&address, &namespace), "operator").await;
    let mut want = vec![many, after];
    want.sort();
    assert_eq!(operator.services().await.expect("services"), want);

    let prefix = format!("{root}/");
    raw.delete(prefix.clone(), prefix_end(prefix.as_bytes()))
        .await
        .expect("clean up");
}
