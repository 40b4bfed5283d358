//! Shared support for the workspace's integration tests (in `tests/tests/`).
//!
//! Linking the plugin crates here is what lets the tests find their extensions by name.

#![forbid(unsafe_code)]

use rpc_registry_etcd as _;
use rpc_registry_zookeeper as _;
use rpc_serialization_bincode as _;

pub mod registry;
