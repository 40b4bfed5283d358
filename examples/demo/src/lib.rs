//! Examples for the RPC framework: service definitions and implementations shared by the
//! `provider`, `consumer` and `demo` binaries.

#![forbid(unsafe_code)]

// The registry adapters, linked so that every binary takes every registry the README names.
#[cfg(feature = "etcd")]
use rpc_registry_etcd as _;
#[cfg(feature = "nacos")]
use rpc_registry_nacos as _;
#[cfg(feature = "zookeeper")]
use rpc_registry_zookeeper as _;

pub mod idgen;
pub mod services;

pub use services::{
    GreetError, Greeter, GreeterClient, GreeterServer, IdServer, IdService, IdServiceClient,
    IdServiceServer, SignedGreeter,
};
