//! Examples for the RPC framework: service definitions and implementations shared by the
//! `provider`, `consumer` and `demo` binaries.

#![forbid(unsafe_code)]

pub mod idgen;
pub mod services;

pub use services::{
    GreetError, Greeter, GreeterClient, GreeterServer, IdServer, IdService, IdServiceClient,
    IdServiceServer, SignedGreeter,
};
