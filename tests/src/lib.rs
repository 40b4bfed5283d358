//! Shared support for the workspace's integration tests (in `tests/tests/`).
//!
//! Linking the plugin crates here is what lets the tests find their extensions by name.

#![forbid(unsafe_code)]

use rpc_serialization_bincode as _;
