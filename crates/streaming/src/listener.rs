//! Streaming listeners and the per-batch `BatchInfo` they receive.

use crate::Time;
use std::time::Duration;

/// What happened to one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// The batch time.
    pub batch_time: Time,
    /// When its jobs were generated (clock time).
    pub submission_time: Time,
    /// When its first job started.
    pub processing_start: Option<Time>,
    /// When its last job ended.
    pub processing_end: Option<Time>,
    /// Records the input streams contributed to the batch, where they know it.
    pub records: u64,
    /// The same, by input stream id (the `stream` of [`ReceiverInfo`](crate::ReceiverInfo) for
    /// receiver streams).
    pub input_records: Vec<(usize, u64)>,
    /// Number of output operations run.
    pub output_operations: usize,
    /// The first failure among its jobs, if any.
    pub failure: Option<String>,
}

impl BatchInfo {
    /// Time from the batch time until processing started.
    pub fn scheduling_delay(&self) -> Option<Duration> {
        self.processing_start.map(|s| s.since(self.batch_time))
    }

    /// Time the batch's jobs took.
    pub fn processing_delay(&self) -> Option<Duration> {
        Some(self.processing_end?.since(self.processing_start?))
    }

    /// Time from the batch time until its processing ended: "Total delay" in Spark's logs.
    pub fn total_delay(&self) -> Option<Duration> {
        self.processing_end.map(|e| e.since(self.batch_time))
    }
}

/// Receives batch events. Methods have empty defaults; implement those you need. Called from the
/// streaming context's threads: keep them quick.
pub trait StreamingListener: Send + Sync {
    /// A batch's jobs were generated and queued.
    fn on_batch_submitted(&self, _info: &BatchInfo) {}
    /// A batch's jobs started running.
    fn on_batch_started(&self, _info: &BatchInfo) {}
    /// A batch finished (successfully or not: see [`BatchInfo::failure`]).
    fn on_batch_completed(&self, _info: &BatchInfo) {}
    /// A receiver started.
    fn on_receiver_started(&self, _info: &crate::ReceiverInfo) {}
    /// A receiver failed (it is restarted after a backoff unless the error was fatal).
    fn on_receiver_error(&self, _info: &crate::ReceiverInfo) {}
    /// A receiver stopped.
    fn on_receiver_stopped(&self, _info: &crate::ReceiverInfo) {}
}
