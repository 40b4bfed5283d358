//! The service the harness calls: an idempotent read and a non-idempotent charge, whose
//! every execution is appended to a journal file, so executions can be counted even for a
//! provider killed with SIGKILL (what was written before the kill is in the file).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// What the harness calls.
#[rpc_core::service(name = "chaos.Ledger", version = "1.0.0")]
pub trait Ledger {
    /// The balance of `account` (pure, safe to retry).
    #[idempotent]
    async fn balance(&self, account: u64) -> u64;

    /// Charges `order`: a side effect that must run once. Not idempotent, so failover never
    /// retries it after it may have reached a provider.
    async fn charge(&self, order: u64, amount: u64) -> u64;

    /// The provider's name.
    #[idempotent]
    async fn name(&self) -> String;
}

/// A [`Ledger`] that journals every charge it executes.
pub(crate) struct JournaledLedger {
    name: String,
    journal: Mutex<File>,
    /// Time a charge takes, split around the journal write: a kill can land before the
    /// side effect, or after it and before the answer.
    work: Duration,
}

impl JournaledLedger {
    /// A ledger appending to the journal at `path`.
    pub(crate) fn open(name: &str, path: &Path, work: Duration) -> std::io::Result<Self> {
        let journal = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JournaledLedger {
            name: name.to_string(),
            journal: Mutex::new(journal),
            work,
        })
    }
}

impl Ledger for JournaledLedger {
    async fn balance(&self, account: u64) -> u64 {
        account.wrapping_mul(31)
    }

    async fn charge(&self, order: u64, amount: u64) -> u64 {
        tokio::time::sleep(self.work / 2).await;
        if let Ok(mut j) = self.journal.lock() {
            // One write per execution; it is in the file as soon as the call returns.
            let _ = j.write_all(format!("{order}\n").as_bytes());
        }
        tokio::time::sleep(self.work / 2).await;
        amount
    }

    async fn name(&self) -> String {
        self.name.clone()
    }
}

/// Executions per order, over every journal in `paths`.
pub(crate) fn executions(paths: &[std::path::PathBuf]) -> std::collections::HashMap<u64, u32> {
    let mut out = std::collections::HashMap::new();
    for p in paths {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        for line in text.lines() {
            if let Ok(order) = line.trim().parse::<u64>() {
                *out.entry(order).or_insert(0) += 1;
            }
        }
    }
    out
}
