//! A small etcd v3 gRPC client: the calls the registry and the idempotency store make
//! (range, put, delete, transactions with create-revision conditions, watch, lease
//! grant/revoke/keep-alive, authenticate), nothing more.
//!
//! The messages are written out here with `prost` derives, using the field numbers of etcd's
//! `rpc.proto` and `kv.proto` (package `etcdserverpb`), so building this crate needs no
//! `protoc` and no build script: the Rust toolchain alone. Fields the registry never reads
//! are left out; protobuf decoders skip unknown fields, so etcd's extra fields are harmless.

use std::time::Duration;

use futures_util::stream::{self, Stream};
use tokio::sync::mpsc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};

/// The messages of etcd's v3 API that this client sends and reads.
pub mod pb {
    /// Metadata every response carries.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseHeader {
        /// The cluster that answered.
        #[prost(uint64, tag = "1")]
        pub cluster_id: u64,
        /// The member that answered.
        #[prost(uint64, tag = "2")]
        pub member_id: u64,
        /// The store's revision when the request was applied.
        #[prost(int64, tag = "3")]
        pub revision: i64,
    }

    /// A stored key and its value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// The key.
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        /// Revision of the last creation of the key.
        #[prost(int64, tag = "2")]
        pub create_revision: i64,
        /// Revision of the last change of the key.
        #[prost(int64, tag = "3")]
        pub mod_revision: i64,
        /// The value (empty for a keys-only read).
        #[prost(bytes = "vec", tag = "5")]
        pub value: Vec<u8>,
        /// The lease the key is attached to (0: none).
        #[prost(int64, tag = "6")]
        pub lease: i64,
    }

    /// Reads the keys in `[key, range_end)`, or `key` alone when `range_end` is empty.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RangeRequest {
        /// First key.
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        /// End of the range, exclusive.
        #[prost(bytes = "vec", tag = "2")]
        pub range_end: Vec<u8>,
        /// Most keys returned (0: no limit).
        #[prost(int64, tag = "3")]
        pub limit: i64,
        /// Return keys without their values.
        #[prost(bool, tag = "8")]
        pub keys_only: bool,
    }

    /// The keys a [`RangeRequest`] found.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RangeResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        /// The keys, in key order.
        #[prost(message, repeated, tag = "2")]
        pub kvs: Vec<KeyValue>,
        /// More keys exist past the limit.
        #[prost(bool, tag = "3")]
        pub more: bool,
        /// Number of keys in the range.
        #[prost(int64, tag = "4")]
        pub count: i64,
    }

    /// Sets a key, optionally attached to a lease.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutRequest {
        /// The key.
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        /// The value.
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
        /// The lease the key dies with (0: none).
        #[prost(int64, tag = "3")]
        pub lease: i64,
    }

    /// Answer to a [`PutRequest`].
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
    }

    /// Deletes the keys in `[key, range_end)`, or `key` alone.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteRangeRequest {
        /// First key.
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        /// End of the range, exclusive.
        #[prost(bytes = "vec", tag = "2")]
        pub range_end: Vec<u8>,
    }

    /// Answer to a [`DeleteRangeRequest`].
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteRangeResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        /// Number of keys deleted.
        #[prost(int64, tag = "2")]
        pub deleted: i64,
    }

    /// One operation of a transaction.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RequestOp {
        /// A read.
        #[prost(message, optional, tag = "1")]
        pub request_range: Option<RangeRequest>,
        /// A put.
        #[prost(message, optional, tag = "2")]
        pub request_put: Option<PutRequest>,
        /// A delete.
        #[prost(message, optional, tag = "3")]
        pub request_delete_range: Option<DeleteRangeRequest>,
    }

    /// A condition of a transaction on one key (only `create_revision` is compared here:
    /// 0 means the key does not exist).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Compare {
        /// How the key's value compares: 0 equal, 1 greater, 2 less, 3 not equal.
        #[prost(int32, tag = "1")]
        pub result: i32,
        /// What is compared: 1 is the create revision.
        #[prost(int32, tag = "2")]
        pub target: i32,
        /// The key.
        #[prost(bytes = "vec", tag = "3")]
        pub key: Vec<u8>,
        /// The create revision compared with.
        #[prost(int64, tag = "5")]
        pub create_revision: i64,
    }

    impl Compare {
        /// "`key` does not exist": its create revision equals 0.
        pub fn absent(key: impl Into<Vec<u8>>) -> Compare {
            Compare {
                result: 0,
                target: 1,
                key: key.into(),
                create_revision: 0,
            }
        }
    }

    /// A transaction: when every `compare` holds, the `success` operations are applied,
    /// else the `failure` ones, atomically.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TxnRequest {
        /// The conditions.
        #[prost(message, repeated, tag = "1")]
        pub compare: Vec<Compare>,
        /// The operations when they hold.
        #[prost(message, repeated, tag = "2")]
        pub success: Vec<RequestOp>,
        /// The operations when one does not.
        #[prost(message, repeated, tag = "3")]
        pub failure: Vec<RequestOp>,
    }

    /// The answer of one operation of a transaction.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseOp {
        /// A read's answer.
        #[prost(message, optional, tag = "1")]
        pub response_range: Option<RangeResponse>,
    }

    /// Answer to a [`TxnRequest`].
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TxnResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        /// Whether the conditions held.
        #[prost(bool, tag = "2")]
        pub succeeded: bool,
        /// The answers of the operations applied.
        #[prost(message, repeated, tag = "3")]
        pub responses: Vec<ResponseOp>,
    }

    /// Opens a watch on `[key, range_end)`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchCreateRequest {
        /// First key.
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        /// End of the range, exclusive.
        #[prost(bytes = "vec", tag = "2")]
        pub range_end: Vec<u8>,
    }

    /// A message on the watch stream (only creation is sent by this client).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchRequest {
        /// Opens a watch.
        #[prost(message, optional, tag = "1")]
        pub create_request: Option<WatchCreateRequest>,
    }

    /// A change of one key.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        /// 0 = put, 1 = delete.
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// The key after the change.
        #[prost(message, optional, tag = "2")]
        pub kv: Option<KeyValue>,
    }

    /// A message of the watch stream: creation, cancellation or events.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        /// The watch this message is about.
        #[prost(int64, tag = "2")]
        pub watch_id: i64,
        /// The watch was opened.
        #[prost(bool, tag = "3")]
        pub created: bool,
        /// The watch was cancelled by the server.
        #[prost(bool, tag = "4")]
        pub canceled: bool,
        /// The revision the watch asked for was compacted.
        #[prost(int64, tag = "5")]
        pub compact_revision: i64,
        /// Why the watch was cancelled.
        #[prost(string, tag = "6")]
        pub cancel_reason: String,
        /// The changes.
        #[prost(message, repeated, tag = "11")]
        pub events: Vec<Event>,
    }

    /// Asks for a lease of `ttl` seconds.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseGrantRequest {
        /// Time to live in seconds.
        #[prost(int64, tag = "1")]
        pub ttl: i64,
        /// Requested id (0: the server picks).
        #[prost(int64, tag = "2")]
        pub id: i64,
    }

    /// A granted lease.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseGrantResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        /// The lease id.
        #[prost(int64, tag = "2")]
        pub id: i64,
        /// Its time to live in seconds.
        #[prost(int64, tag = "3")]
        pub ttl: i64,
        /// Why it could not be granted.
        #[prost(string, tag = "4")]
        pub error: String,
    }

    /// Revokes a lease, deleting its keys.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseRevokeRequest {
        /// The lease id.
        #[prost(int64, tag = "1")]
        pub id: i64,
    }

    /// Answer to a [`LeaseRevokeRequest`].
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseRevokeResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
    }

    /// Refreshes a lease.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseKeepAliveRequest {
        /// The lease id.
        #[prost(int64, tag = "1")]
        pub id: i64,
    }

    /// A refreshed lease; a TTL of 0 or less means it no longer exists.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseKeepAliveResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        /// The lease id.
        #[prost(int64, tag = "2")]
        pub id: i64,
        /// Its new time to live in seconds.
        #[prost(int64, tag = "3")]
        pub ttl: i64,
    }

    /// Logs a user in.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AuthenticateRequest {
        /// User name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Password.
        #[prost(string, tag = "2")]
        pub password: String,
    }

    /// The token that authorizes the user's later requests.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AuthenticateResponse {
        /// Response metadata.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        /// The token, sent as `token` metadata.
        #[prost(string, tag = "2")]
        pub token: String,
    }
}

/// The end of the range of every key that starts with `prefix` (etcd's "prefix" convention:
/// the prefix with its last byte below 0xff incremented; all keys when there is none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A connection to an etcd cluster (cheap to clone: clones share the channel).
#[derive(Clone)]
pub struct EtcdClient {
    channel: Channel,
    token: Option<MetadataValue<Ascii>>,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("authenticated", &self.token.is_some())
            .finish()
    }
}

/// A lease kept alive over one stream: send with [`LeaseKeeper::keep_alive`], read the
/// answers from the paired [`Streaming`].
#[derive(Debug)]
pub struct LeaseKeeper {
    id: i64,
    tx: mpsc::Sender<pb::LeaseKeepAliveRequest>,
}

impl LeaseKeeper {
    /// Asks for one refresh of the lease; the answer arrives on the stream.
    pub async fn keep_alive(&mut self) -> Result<(), Status> {
        self.tx
            .send(pb::LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| Status::unavailable("the keep-alive stream is closed"))
    }
}

/// A watch stream; dropping it (and its sender, kept inside) cancels the watch.
#[derive(Debug)]
pub struct WatchStream {
    _tx: mpsc::Sender<pb::WatchRequest>,
    inner: Streaming<pb::WatchResponse>,
}

impl WatchStream {
    /// The next message of the watch; `None` when the server closed the stream.
    pub async fn message(&mut self) -> Result<Option<pb::WatchResponse>, Status> {
        self.inner.message().await
    }
}

fn request_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

impl EtcdClient {
    /// Connects to `endpoints` (`http://host:port`, balanced over all of them) and, with
    /// `user`, authenticates. The channel connects lazily; the first request reports a
    /// server that cannot be reached.
    pub async fn connect(
        endpoints: &[String],
        connect_timeout: Duration,
        user: Option<(&str, &str)>,
    ) -> Result<EtcdClient, Status> {
        let mut list = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let endpoint = Endpoint::from_shared(e.clone())
                .map_err(|err| Status::invalid_argument(format!("endpoint '{e}': {err}")))?
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true);
            list.push(endpoint);
        }
        if list.is_empty() {
            return Err(Status::invalid_argument("no etcd endpoint"));
        }
        let mut client = EtcdClient {
            channel: Channel::balance_list(list.into_iter()),
            token: None,
        };
        if let Some((name, password)) = user {
            let resp: pb::AuthenticateResponse = client
                .unary(
                    "/etcdserverpb.Auth/Authenticate",
                    pb::AuthenticateRequest {
                        name: name.to_string(),
                        password: password.to_string(),
                    },
                )
                .await?;
            let token = resp.token.parse().map_err(|_| {
                Status::internal("etcd answered an authentication token that is not ASCII")
            })?;
            client.token = Some(token);
        }
        Ok(client)
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        request
    }

    async fn grpc(&self) -> Result<tonic::client::Grpc<Channel>, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("etcd is not reachable: {e}")))?;
        Ok(grpc)
    }

    async fn unary<Q, A>(&self, path: &'static str, message: Q) -> Result<A, Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc().await?;
        let codec = tonic_prost::ProstCodec::<Q, A>::default();
        grpc.unary(
            self.request(message),
            PathAndQuery::from_static(path),
            codec,
        )
        .await
        .map(tonic::Response::into_inner)
    }

    async fn streaming<Q, A>(
        &self,
        path: &'static str,
        first: Q,
    ) -> Result<(mpsc::Sender<Q>, Streaming<A>), Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc().await?;
        let (tx, rx) = mpsc::channel(4);
        tx.send(first)
            .await
            .map_err(|_| Status::internal("request stream closed before it was opened"))?;
        let codec = tonic_prost::ProstCodec::<Q, A>::default();
        let resp = grpc
            .streaming(
                self.request(request_stream(rx)),
                PathAndQuery::from_static(path),
                codec,
            )
            .await?;
        Ok((tx, resp.into_inner()))
    }

    /// Reads `[key, range_end)` (or `key` alone when `range_end` is empty), at most `limit`
    /// keys (0: all), values left out when `keys_only`.
    pub async fn range(
        &self,
        key: impl Into<Vec<u8>>,
        range_end: impl Into<Vec<u8>>,
        limit: i64,
        keys_only: bool,
    ) -> Result<pb::RangeResponse, Status> {
        let req = pb::RangeRequest {
            key: key.into(),
            range_end: range_end.into(),
            limit,
            keys_only,
        };
        self.unary("/etcdserverpb.KV/Range", req).await
    }

    /// Sets `key` to `value`, attached to `lease` (0: none).
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<pb::PutResponse, Status> {
        let req = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
        };
        self.unary("/etcdserverpb.KV/Put", req).await
    }

    /// Sets every `(key, value)` in one atomic transaction, without a lease.
    pub async fn put_all(
        &self,
        pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<pb::TxnResponse, Status> {
        let success = pairs
            .into_iter()
            .map(|(key, value)| pb::RequestOp {
                request_put: Some(pb::PutRequest {
                    key,
                    value,
                    lease: 0,
                }),
                ..Default::default()
            })
            .collect();
        self.unary(
            "/etcdserverpb.KV/Txn",
            pb::TxnRequest {
                success,
                ..Default::default()
            },
        )
        .await
    }

    /// Runs a transaction: `success` when every condition of `compare` holds, else
    /// `failure`.
    pub async fn txn(
        &self,
        compare: Vec<pb::Compare>,
        success: Vec<pb::RequestOp>,
        failure: Vec<pb::RequestOp>,
    ) -> Result<pb::TxnResponse, Status> {
        self.unary(
            "/etcdserverpb.KV/Txn",
            pb::TxnRequest {
                compare,
                success,
                failure,
            },
        )
        .await
    }

    /// Deletes `[key, range_end)` (or `key` alone when `range_end` is empty).
    pub async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
        range_end: impl Into<Vec<u8>>,
    ) -> Result<pb::DeleteRangeResponse, Status> {
        let req = pb::DeleteRangeRequest {
            key: key.into(),
            range_end: range_end.into(),
        };
        self.unary("/etcdserverpb.KV/DeleteRange", req).await
    }

    /// Watches `[key, range_end)`; the first message confirms the watch was created.
    pub async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        range_end: impl Into<Vec<u8>>,
    ) -> Result<WatchStream, Status> {
        let create = pb::WatchRequest {
            create_request: Some(pb::WatchCreateRequest {
                key: key.into(),
                range_end: range_end.into(),
            }),
        };
        let (tx, inner) = self.streaming("/etcdserverpb.Watch/Watch", create).await?;
        Ok(WatchStream { _tx: tx, inner })
    }

    /// Grants a lease of `ttl` seconds.
    pub async fn lease_grant(&self, ttl: i64) -> Result<pb::LeaseGrantResponse, Status> {
        let resp: pb::LeaseGrantResponse = self
            .unary(
                "/etcdserverpb.Lease/LeaseGrant",
                pb::LeaseGrantRequest { ttl, id: 0 },
            )
            .await?;
        if resp.error.is_empty() {
            Ok(resp)
        } else {
            Err(Status::unavailable(format!(
                "lease not granted: {}",
                resp.error
            )))
        }
    }

    /// Revokes lease `id`; its keys are deleted.
    pub async fn lease_revoke(&self, id: i64) -> Result<pb::LeaseRevokeResponse, Status> {
        self.unary(
            "/etcdserverpb.Lease/LeaseRevoke",
            pb::LeaseRevokeRequest { id },
        )
        .await
    }

    /// Opens a keep-alive stream for lease `id` and sends the first refresh.
    pub async fn lease_keep_alive(
        &self,
        id: i64,
    ) -> Result<(LeaseKeeper, Streaming<pb::LeaseKeepAliveResponse>), Status> {
        let (tx, replies) = self
            .streaming(
                "/etcdserverpb.Lease/LeaseKeepAlive",
                pb::LeaseKeepAliveRequest { id },
            )
            .await?;
        Ok((LeaseKeeper { id, tx }, replies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/dubbo/"), b"/dubbo0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    /// The field numbers match etcd's `rpc.proto`: a put with key "k", value "v", lease 7
    /// encodes as tag 1 (bytes), tag 2 (bytes), tag 3 (varint).
    #[test]
    fn messages_use_the_field_numbers_of_etcds_proto() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 7,
        };
        assert_eq!(put.encode_to_vec(), b"\x0a\x01k\x12\x01v\x18\x07".to_vec());
        let range = pb::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 2,
            keys_only: true,
        };
        assert_eq!(
            range.encode_to_vec(),
            b"\x0a\x01a\x12\x01b\x18\x02\x40\x01".to_vec()
        );
        // A response with fields this client does not know (version = 4) still decodes.
        let kv = pb::KeyValue::decode(&b"\x0a\x01k\x20\x09\x2a\x01v\x30\x05"[..]).expect("kv");
        assert_eq!(
            (kv.key, kv.value, kv.lease),
            (b"k".to_vec(), b"v".to_vec(), 5)
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_the_first_request_not_the_connect() {
        let client = EtcdClient::connect(
            &["http://127.0.0.1:1".to_string()],
            Duration::from_millis(200),
            None,
        )
        .await
        .expect("lazy connect");
        let res =
            tokio::time::timeout(Duration::from_secs(2), client.range("k", "", 0, true)).await;
        // Either the request fails or it is still waiting for a connection: never a success.
        assert!(!matches!(res, Ok(Ok(_))));
    }

    #[tokio::test]
    async fn a_bad_endpoint_is_an_invalid_argument() {
        let err = EtcdClient::connect(&["not a uri".to_string()], Duration::from_secs(1), None)
            .await
            .expect_err("bad endpoint");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("not a uri"), "{err}");
    }
}
