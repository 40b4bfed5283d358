//! Registry outages: the consumer cache answers while the registry is away (also for a
//! consumer started during the outage), and recovery brings new providers.

use rpc_tests::registry::{
    scenario_brief_disconnect_keeps_watching, scenario_outage_served_from_cache, Backend,
};

#[tokio::test]
async fn zookeeper_outage_is_served_from_the_disk_cache_and_recovers() {
    scenario_outage_served_from_cache(Backend::Zookeeper).await;
}

#[tokio::test]
async fn etcd_outage_is_served_from_the_disk_cache_and_recovers() {
    scenario_outage_served_from_cache(Backend::Etcd).await;
}

#[tokio::test]
async fn nacos_outage_is_served_from_the_disk_cache_and_recovers() {
    scenario_outage_served_from_cache(Backend::Nacos).await;
}

#[tokio::test]
async fn zookeeper_brief_disconnect_keeps_the_watch() {
    scenario_brief_disconnect_keeps_watching(Backend::Zookeeper).await;
}

#[tokio::test]
async fn etcd_brief_disconnect_keeps_the_watch() {
    scenario_brief_disconnect_keeps_watching(Backend::Etcd).await;
}

#[tokio::test]
async fn nacos_brief_disconnect_keeps_the_watch() {
    scenario_brief_disconnect_keeps_watching(Backend::Nacos).await;
}
