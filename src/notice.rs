//! Notices: one-line remarks a library operation has for the person running it while it works
//! (it is waiting for a lock; it removed something it left behind), which are neither its
//! result nor an error.
//!
//! The library never prints them itself: it hands each to the sink the program installed
//! ([`set_sink`]; `cli` installs one that writes `evstore: TEXT` on stderr). Without a sink a
//! notice is dropped, so a library caller that installs none sees no output.
//!
//! **Architecture Invariant:** this is the only way code below `cli` says anything outside its
//! return value; a notice never changes a result.

use std::sync::OnceLock;

/// Where notices go.
pub type NoticeSink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<NoticeSink> = OnceLock::new();

/// Install the process's notice sink. The first call wins; returns false (and drops `sink`) if a
/// sink was installed already.
pub fn set_sink(sink: NoticeSink) -> bool {
    SINK.set(sink).is_ok()
}

/// Hand `text` (one sentence, no `evstore:` prefix) to the installed sink, if any.
pub fn notice(text: &str) {
    if let Some(sink) = SINK.get() {
        sink(text);
    }
}
