//! Segment ids: dense, increasing ids per business tag, handed out from blocks ("segments")
//! reserved in a shared store.
//!
//! A store round trip per id would be slow, so the allocator reserves `step` ids at a time.
//! To hide the store's latency it double-buffers: when two thirds of the current segment are
//! used, the next segment is fetched in the background, so the switch is normally instant.
//! If the store fails, the ids left in the current segment are still served; the error reaches
//! callers only when no reserved id is left.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::IdError;

/// Where segments are reserved (a database row per tag in production).
#[async_trait::async_trait]
pub trait SegmentStore: Send + Sync {
    /// Reserves the next `step` ids of `tag` and returns the first of them.
    async fn reserve(&self, tag: &str, step: u64) -> Result<u64, IdError>;
}

/// An in-memory store with a fixed set of tags, each starting at 1.
#[derive(Debug)]
pub struct MemoryStore {
    next: Mutex<HashMap<String, u64>>,
    reserved: AtomicU64,
}

impl MemoryStore {
    /// A store knowing `tags`.
    pub fn new<'a>(tags: impl IntoIterator<Item = &'a str>) -> Self {
        MemoryStore {
            next: Mutex::new(tags.into_iter().map(|t| (t.to_string(), 1)).collect()),
            reserved: AtomicU64::new(0),
        }
    }

    /// How many segments were reserved so far.
    pub fn reservations(&self) -> u64 {
        self.reserved.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl SegmentStore for MemoryStore {
    async fn reserve(&self, tag: &str, step: u64) -> Result<u64, IdError> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next
            .get_mut(tag)
            .ok_or_else(|| IdError::UnknownTag(tag.to_string()))?;
        let first = *slot;
        *slot += step;
        self.reserved.fetch_add(1, Ordering::SeqCst);
        Ok(first)
    }
}

/// A store shared by processes on one machine: one file per tag holding the next free id,
/// updated under an exclusive file lock, so providers in separate processes never hand out
/// the same block.
#[derive(Debug)]
pub struct FileStore {
    dir: std::path::PathBuf,
}

impl FileStore {
    /// A store in `dir` (created if missing).
    pub fn new(dir: impl Into<std::path::PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(FileStore { dir })
    }

    fn reserve_blocking(&self, tag: &str, step: u64) -> Result<u64, IdError> {
        use std::io::{Read, Seek, Write};
        let fail = |reason: String| IdError::Store {
            tag: tag.to_string(),
            reason,
        };
        if tag.is_empty()
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(IdError::UnknownTag(tag.to_string()));
        }
        let path = self.dir.join(format!("{tag}.next"));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail(format!("open {}: {e}", path.display())))?;
        f.lock().map_err(|e| fail(format!("lock: {e}")))?;
        let mut text = String::new();
        f.read_to_string(&mut text)
            .map_err(|e| fail(format!("read: {e}")))?;
        let first: u64 = match text.trim() {
            "" => 1,
            t => t
                .parse()
                .map_err(|_| fail(format!("corrupt counter '{t}'")))?,
        };
        f.set_len(0).map_err(|e| fail(format!("truncate: {e}")))?;
        f.rewind().map_err(|e| fail(format!("seek: {e}")))?;
        write!(f, "{}", first + step).map_err(|e| fail(format!("write: {e}")))?;
        f.sync_data().map_err(|e| fail(format!("sync: {e}")))?;
        Ok(first)
    }
}

#[async_trait::async_trait]
impl SegmentStore for FileStore {
    async fn reserve(&self, tag: &str, step: u64) -> Result<u64, IdError> {
        let me = FileStore {
            dir: self.dir.clone(),
        };
        let tag = tag.to_string();
        tokio::task::spawn_blocking(move || me.reserve_blocking(&tag, step))
            .await
            .map_err(|e| IdError::Store {
                tag: String::new(),
                reason: format!("store task failed: {e}"),
            })?
    }
}

type Prefetch = tokio::task::JoinHandle<Result<u64, IdError>>;

struct Buffer {
    /// Next id to hand out and the end (exclusive) of the current segment.
    next: u64,
    end: u64,
    /// The background reservation of the following segment, once started.
    prefetch: Option<Prefetch>,
}

/// Hands out ids per tag from double-buffered segments.
pub struct SegmentAllocator {
    store: Arc<dyn SegmentStore>,
    step: u64,
    buffers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Buffer>>>>,
}

impl SegmentAllocator {
    /// An allocator reserving `step` ids at a time (at least 3) from `store`.
    pub fn new(store: Arc<dyn SegmentStore>, step: u64) -> Self {
        SegmentAllocator {
            store,
            step: step.max(3),
            buffers: Mutex::new(HashMap::new()),
        }
    }

    fn buffer(&self, tag: &str) -> Arc<tokio::sync::Mutex<Buffer>> {
        let mut map = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tag.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Buffer {
                    next: 0,
                    end: 0,
                    prefetch: None,
                }))
            })
            .clone()
    }

    /// The next id of `tag`.
    pub async fn next_id(&self, tag: &str) -> Result<u64, IdError> {
        let buffer = self.buffer(tag);
        let mut b = buffer.lock().await;
        if b.next >= b.end {
            let first = match b.prefetch.take() {
                Some(handle) => handle.await.map_err(|e| IdError::Store {
                    tag: tag.to_string(),
                    reason: format!("prefetch task failed: {e}"),
                })??,
                None => self.store.reserve(tag, self.step).await?,
            };
            b.next = first;
            b.end = first + self.step;
        }
        let id = b.next;
        b.next += 1;
        let used = b.next + self.step - b.end;
        if b.prefetch.is_none() && used * 3 >= self.step * 2 {
            let store = self.store.clone();
            let tag = tag.to_string();
            let step = self.step;
            b.prefetch = Some(tokio::spawn(async move { store.reserve(&tag, step).await }));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test]
    async fn ids_are_dense_and_increasing_across_segments() {
        let store = Arc::new(MemoryStore::new(["order"]));
        let alloc = SegmentAllocator::new(store.clone(), 10);
        let ids: Vec<u64> = futures_collect(&alloc, "order", 35).await;
        assert_eq!(ids, (1..=35).collect::<Vec<_>>());
        assert!(store.reservations() >= 4);
    }

    async fn futures_collect(alloc: &SegmentAllocator, tag: &str, n: usize) -> Vec<u64> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(alloc.next_id(tag).await.expect("id"));
        }
        v
    }

    #[tokio::test]
    async fn next_segment_is_prefetched_at_two_thirds() {
        let store = Arc::new(MemoryStore::new(["t"]));
        let alloc = SegmentAllocator::new(store.clone(), 30);
        futures_collect(&alloc, "t", 19).await;
        tokio::task::yield_now().await;
        assert_eq!(store.reservations(), 1, "no prefetch before two thirds");
        futures_collect(&alloc, "t", 1).await; // 20 of 30 used
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(store.reservations(), 2, "prefetch started at two thirds");
        // The switch uses the prefetched block: no extra reservation.
        futures_collect(&alloc, "t", 11).await;
        assert_eq!(store.reservations(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_never_share_an_id() {
        let store = Arc::new(MemoryStore::new(["t"]));
        let alloc = Arc::new(SegmentAllocator::new(store, 7));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let a = alloc.clone();
                tokio::spawn(async move {
                    let mut v = Vec::new();
                    for _ in 0..500 {
                        v.push(a.next_id("t").await.expect("id"));
                    }
                    v
                })
            })
            .collect();
        let mut all = HashSet::new();
        for t in tasks {
            for id in t.await.expect("task") {
                assert!(all.insert(id), "duplicate {id}");
            }
        }
        assert_eq!(all.len(), 4000);
    }

    #[tokio::test]
    async fn unknown_tag_is_an_error() {
        let alloc = SegmentAllocator::new(Arc::new(MemoryStore::new(["a"])), 10);
        assert_eq!(
            alloc.next_id("b").await,
            Err(IdError::UnknownTag("b".to_string()))
        );
    }

    #[tokio::test]
    async fn file_store_blocks_never_overlap() {
        let dir = std::env::temp_dir().join(format!("rpc-segments-{}", std::process::id()));
        let a = FileStore::new(&dir).expect("dir");
        let b = FileStore::new(&dir).expect("dir");
        let x = a.reserve("orders", 100).await.expect("a");
        let y = b.reserve("orders", 100).await.expect("b");
        assert_eq!((x, y), (1, 101));
        assert_eq!(
            a.reserve("../etc", 1).await,
            Err(IdError::UnknownTag("../etc".to_string()))
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    struct Failing;
    #[async_trait::async_trait]
    impl SegmentStore for Failing {
        async fn reserve(&self, tag: &str, _: u64) -> Result<u64, IdError> {
            Err(IdError::Store {
                tag: tag.to_string(),
                reason: "database down".into(),
            })
        }
    }

    #[tokio::test]
    async fn store_failure_reaches_the_caller() {
        let alloc = SegmentAllocator::new(Arc::new(Failing), 10);
        let e = alloc.next_id("x").await.expect_err("store down");
        assert!(e.to_string().contains("database down"), "{e}");
    }
}
