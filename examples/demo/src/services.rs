//! The services the examples serve and call.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::idgen::{IdError, SegmentAllocator, Snowflake};

/// A business error of [`Greeter::greet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum GreetError {
    /// Names must not be empty.
    #[error("the name is empty")]
    EmptyName,
}

/// Says hello, and says who answered (so the demo can show the load balancing).
#[rpc_core::service(name = "org.example.Greeter", version = "1.0.0")]
pub trait Greeter {
    /// A greeting for `name`, naming the provider that made it.
    #[idempotent]
    async fn greet(&self, name: String) -> Result<String, GreetError>;
}

/// A [`Greeter`] that signs its answers with its own name.
#[derive(Debug, Clone)]
pub struct SignedGreeter {
    /// Who this provider is, for instance `provider-1`.
    pub name: String,
}

impl Greeter for SignedGreeter {
    async fn greet(&self, name: String) -> Result<String, GreetError> {
        if name.is_empty() {
            return Err(GreetError::EmptyName);
        }
        Ok(format!("hello {name}, from {}", self.name))
    }
}

/// A distributed id service.
///
/// Both generators are safe to retry (a retried call may waste an id, never repeat one), so
/// they are declared idempotent and failover may retry them.
#[rpc_core::service(name = "org.example.IdService", version = "1.0.0")]
pub trait IdService {
    /// A time-ordered snowflake id from this provider's worker.
    #[idempotent]
    async fn snowflake(&self) -> Result<u64, IdError>;

    /// The next dense id of a business `tag`. Route by tag with `consistenthash` so one
    /// provider's pre-fetched segment serves a tag.
    #[idempotent]
    async fn segment(&self, tag: String) -> Result<u64, IdError>;

    /// Which provider answered.
    #[idempotent]
    async fn whoami(&self) -> String;
}

/// The id service implementation of one provider process.
pub struct IdServer {
    /// Who this provider is.
    pub name: String,
    /// Its snowflake worker.
    pub snowflake: Snowflake,
    /// Its segment allocator (the store behind it is shared by all providers).
    pub segments: Arc<SegmentAllocator>,
}

impl IdService for IdServer {
    async fn snowflake(&self) -> Result<u64, IdError> {
        self.snowflake.next_id()
    }

    async fn segment(&self, tag: String) -> Result<u64, IdError> {
        self.segments.next_id(&tag).await
    }

    async fn whoami(&self) -> String {
        self.name.clone()
    }
}
