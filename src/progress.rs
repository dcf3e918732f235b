//! Progress of long work (ingest, verify, fsck, export), reported to whoever asked for it.
//!
//! The library never prints (only the CLI does), so a long operation takes a [`Progress`] handle
//! and reports to it: a phase begins with the number of bytes it will process, bytes are counted
//! as they are processed (from any worker thread), and the phase finishes. The default handle,
//! [`Progress::silent`], discards everything at the cost of one branch per call; the CLI plugs in
//! a progress bar on stderr when stderr is a terminal.
//!
//! Progress is advisory: nothing here can change what a command checks, writes or reports.

use std::fmt;
use std::sync::Arc;

/// Something that shows progress: a terminal bar, a test's counter.
///
/// Implementations must be cheap to call often and from several threads at once: `advance` is
/// called once per file read or written, and once per chunk of a large file.
pub trait ProgressSink: Send + Sync {
    /// A phase begins; it will process `total_bytes` bytes.
    fn begin(&self, phase: &str, total_bytes: u64);
    /// `bytes` more bytes of the current phase were processed.
    fn advance(&self, bytes: u64);
    /// The current phase is over, whether it succeeded or not.
    fn finish(&self);
}

/// A handle long operations report their progress to; cloning it shares the sink.
#[derive(Clone, Default)]
pub struct Progress {
    sink: Option<Arc<dyn ProgressSink>>,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.sink.is_some() {
            "Progress(reported)"
        } else {
            "Progress(silent)"
        };
        f.write_str(shown)
    }
}

impl Progress {
    /// A handle that reports to nobody.
    pub fn silent() -> Progress {
        Progress::default()
    }

    /// A handle that reports to `sink`.
    pub fn to(sink: Arc<dyn ProgressSink>) -> Progress {
        Progress { sink: Some(sink) }
    }

    /// Start a phase that will process `total_bytes` bytes. The returned guard finishes the
    /// phase when dropped, so an early return through `?` finishes it too.
    pub fn phase(&self, phase: &str, total_bytes: u64) -> PhaseGuard<'_> {
        if let Some(sink) = &self.sink {
            sink.begin(phase, total_bytes);
        }
        PhaseGuard { progress: self }
    }

    /// Count `bytes` more processed bytes of the current phase.
    pub fn advance(&self, bytes: u64) {
        if let Some(sink) = &self.sink {
            sink.advance(bytes);
        }
    }
}

/// Finishes its phase when dropped.
#[must_use = "the phase finishes when this guard is dropped"]
pub struct PhaseGuard<'a> {
    progress: &'a Progress,
}

impl Drop for PhaseGuard<'_> {
    fn drop(&mut self) {
        if let Some(sink) = &self.progress.sink {
            sink.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl ProgressSink for Recorder {
        fn begin(&self, phase: &str, total_bytes: u64) {
            self.0
                .lock()
                .expect("lock")
                .push(format!("begin {phase} {total_bytes}"));
        }
        fn advance(&self, bytes: u64) {
            self.0
                .lock()
                .expect("lock")
                .push(format!("advance {bytes}"));
        }
        fn finish(&self) {
            self.0.lock().expect("lock").push("finish".into());
        }
    }

    #[test]
    fn phase_guard_finishes_the_phase_on_early_return() {
        let recorder = Arc::new(Recorder::default());
        let progress = Progress::to(recorder.clone());
        let failing = || -> Result<(), &'static str> {
            let _phase = progress.phase("work", 10);
            progress.advance(4);
            Err("stopped early")
        };
        assert_eq!(failing(), Err("stopped early"));
        let calls = recorder.0.lock().expect("lock").clone();
        assert_eq!(calls, vec!["begin work 10", "advance 4", "finish"]);
    }

    #[test]
    fn silent_progress_reports_nothing_and_says_so() {
        let progress = Progress::silent();
        let _phase = progress.phase("work", 1);
        progress.advance(1);
        assert_eq!(format!("{progress:?}"), "Progress(silent)");
    }
}
