//! Malformed input for a live provider: random bytes and structure-aware frames (valid
//! headers over random, truncated, mutated or oversized bodies, events with garbage, unknown
//! serializations), sent in batches over several connections while the provider's answers
//! are drained (a peer that never reads would be cut off for that instead).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rpc_core::exchange::{FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_LEN, MAGIC};
use rpc_core::serialize::ids::MSGPACK;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the sender saw.
#[derive(Default, Debug)]
pub(crate) struct FuzzStats {
    /// Frames (or garbage pieces) written.
    pub(crate) sent: AtomicU64,
    /// Connections the provider closed (bad magic and the like), each opened again.
    pub(crate) closed_by_provider: AtomicU64,
    /// Bytes of answers read back.
    pub(crate) answered_bytes: AtomicU64,
}

fn header(out: &mut Vec<u8>, flag: u8, status: u8, id: u64, len: u32) {
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(flag);
    out.push(status);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
}

/// A valid request for `chaos.Ledger.balance(7)` in msgpack, used as the base of mutations.
fn valid_request(id: u64) -> Vec<u8> {
    let mut body = Vec::new();
    body.push(1u8); // envelope version
    for s in ["chaos.Ledger", "1.0.0", "", "balance"] {
        body.extend_from_slice(&(s.len() as u16).to_be_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    body.extend_from_slice(&1000u32.to_be_bytes()); // timeout budget
    body.extend_from_slice(&0u16.to_be_bytes()); // attachments
    let args = [0x91u8, 0x07]; // msgpack [7]
    body.extend_from_slice(&(args.len() as u32).to_be_bytes());
    body.extend_from_slice(&args);
    let mut out = Vec::new();
    header(
        &mut out,
        FLAG_REQUEST | FLAG_TWO_WAY | MSGPACK,
        0,
        id,
        body.len() as u32,
    );
    out.extend_from_slice(&body);
    out
}

/// Whether `piece` ends the connection on the provider's side (the stream cannot be read
/// past it), so the sender reconnects after it.
pub(crate) struct Piece {
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
    /// The provider will close the connection after these bytes.
    pub(crate) fatal: bool,
}

/// One malformed piece, chosen at random among the kinds in the module docs.
pub(crate) fn piece(rng: &mut fastrand::Rng, id: u64) -> Piece {
    let two_way = FLAG_REQUEST | FLAG_TWO_WAY;
    let mut out = Vec::new();
    // Per mille: the pieces that end a connection are rare, so most frames reach the decoder.
    let fatal = match rng.u16(..1000) {
        // Random bytes: almost always a bad magic, which closes the connection.
        0..=4 => {
            out.extend((0..rng.usize(1..64)).map(|_| rng.u8(..)));
            out.len() >= 2 && out[..2] != MAGIC.to_be_bytes()
        }
        // A valid header over a random body, any serialization id.
        5..=400 => {
            let len = rng.usize(0..256);
            header(&mut out, two_way | rng.u8(..32), rng.u8(..), id, len as u32);
            out.extend((0..len).map(|_| rng.u8(..)));
            false
        }
        // A valid request with bytes flipped in its body.
        401..=750 => {
            out = valid_request(id);
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(HEADER_LEN..out.len());
                out[at] = rng.u8(..);
            }
            false
        }
        // A body length over the payload limit, then a little of it (skipped by the codec).
        751..=755 => {
            header(&mut out, two_way | MSGPACK, 0, id, 64 * 1024 * 1024);
            out.extend((0..rng.usize(0..64)).map(|_| rng.u8(..)));
            // The rest of the announced body never comes: the codec skips until the frame
            // deadline closes the connection.
            true
        }
        // Events (heartbeats) with garbage bodies, one-way and two-way.
        756..=880 => {
            let len = rng.usize(0..32);
            let flag =
                FLAG_REQUEST | FLAG_EVENT | if rng.bool() { FLAG_TWO_WAY } else { 0 } | MSGPACK;
            header(&mut out, flag, 0, id, len as u32);
            out.extend((0..len).map(|_| rng.u8(..)));
            false
        }
        // A response where a request is expected, and one-way requests with bad bodies.
        881..=994 => {
            let len = rng.usize(0..64);
            header(&mut out, rng.u8(..) & !FLAG_REQUEST, 20, id, len as u32);
            out.extend((0..len).map(|_| rng.u8(..)));
            false
        }
        // A valid request truncated, then the connection is dropped.
        _ => {
            let whole = valid_request(id);
            out.extend_from_slice(&whole[..rng.usize(1..whole.len())]);
            true
        }
    };
    Piece { bytes: out, fatal }
}

/// Sends `total` pieces to `port` over `connections` connections.
pub(crate) async fn flood(port: u16, total: u64, connections: usize, stats: Arc<FuzzStats>) {
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for c in 0..connections {
        let (next, stats) = (next.clone(), stats.clone());
        set.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(0x5eed + c as u64);
            'reconnect: loop {
                let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                let (mut rd, mut wr) = stream.into_split();
                let drain_stats = stats.clone();
                let drain = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = rd.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        drain_stats
                            .answered_bytes
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
                let mut batch = Vec::with_capacity(16 * 1024);
                loop {
                    batch.clear();
                    let mut fatal = false;
                    for _ in 0..64 {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            break;
                        }
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        let p = piece(&mut rng, n);
                        batch.extend_from_slice(&p.bytes);
                        if p.fatal {
                            fatal = true;
                            break;
                        }
                    }
                    if batch.is_empty() {
                        drain.abort();
                        return;
                    }
                    if wr.write_all(&batch).await.is_err() || fatal {
                        stats.closed_by_provider.fetch_add(1, Ordering::Relaxed);
                        // The drain ends when the provider closes the connection.
                        drop(wr);
                        drop(drain);
                        continue 'reconnect;
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_request_is_a_whole_frame() {
        let f = valid_request(3);
        let len = u32::from_be_bytes([f[12], f[13], f[14], f[15]]) as usize;
        assert_eq!(f.len(), HEADER_LEN + len);
    }

    #[test]
    fn pieces_cover_every_kind() {
        let mut rng = fastrand::Rng::with_seed(1);
        let pieces: Vec<Piece> = (0..2000).map(|i| piece(&mut rng, i)).collect();
        assert!(pieces.iter().any(|p| p.fatal));
        assert!(pieces.iter().filter(|p| !p.fatal).count() > 1500);
        assert!(pieces.iter().all(|p| !p.bytes.is_empty()));
    }
}
