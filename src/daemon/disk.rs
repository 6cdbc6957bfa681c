//! File writes off the loop. The daemon's runtime has one thread: a write and its fsync on a busy
//! disk there would stall every event, the API and every probe. The persisted state and the node
//! config files are written by one writer thread, in the order asked (`Disk`); a job appends its
//! restart-log rows through `RowSink` on the blocking pool and waits for the fsync before it calls
//! supervisord, so the row still comes first.

use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;
use tracing::error;

use crate::restart_log::{RestartLog, RestartRow};

type Write = Box<dyn FnOnce() + Send>;

/// One writer thread: writes run one after the other, in the order they were asked for.
pub struct Disk {
    sender: mpsc::Sender<Write>,
}

impl Disk {
    /// Starts the writer thread (it ends when the `Disk` is dropped).
    pub fn new() -> Disk {
        let (sender, receiver) = mpsc::channel::<Write>();
        let spawned = std::thread::Builder::new()
            .name("nodekeeper-disk".into())
            .spawn(move || {
                while let Ok(write) = receiver.recv() {
                    write();
                }
            });
        if let Err(e) = spawned {
            // Without its thread the writer writes in place (the loop waits for the disk).
            error!("cannot start the file writer thread: {e}; writing from the loop");
        }
        Disk { sender }
    }

    /// Runs `write` on the writer thread, after every write asked for before. Never blocks.
    pub fn write(&self, write: impl FnOnce() + Send + 'static) {
        if let Err(mpsc::SendError(write)) = self.sender.send(Box::new(write)) {
            write();
        }
    }

    /// Waits until every write asked for so far is done (shutdown).
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        self.write(move || {
            let _ = done.send(());
        });
        let _ = finished.await;
    }
}

impl Default for Disk {
    fn default() -> Self {
        Disk::new()
    }
}

/// Where a job's restart-log rows go: appended and fsynced before the job's supervisord call.
pub trait RowSink: Send + Sync {
    /// Appends `row` durably, or says why not. Blocking: called on the blocking pool.
    fn append(&self, row: &RestartRow) -> Result<(), String>;
}

impl RowSink for Mutex<RestartLog> {
    fn append(&self, row: &RestartRow) -> Result<(), String> {
        let mut log = match self.lock() {
            Ok(log) => log,
            Err(poisoned) => poisoned.into_inner(),
        };
        log.append(row).map_err(|e| e.to_string())
    }
}

/// Appends `row` through `sink` on the blocking pool and waits for it.
pub async fn append(sink: &Arc<dyn RowSink>, row: RestartRow) -> Result<(), String> {
    let sink = Arc::clone(sink);
    tokio::task::spawn_blocking(move || sink.append(&row))
        .await
        .unwrap_or_else(|e| Err(format!("the append failed: {e}")))
}
