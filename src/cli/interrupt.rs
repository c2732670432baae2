//! SIGINT and SIGTERM as a request to stop, for a command that finishes what it
//! started before it exits (`send`: the calls in flight, the file of events not
//! sent, the summary). Only that command catches them; elsewhere they end the
//! process at once, as usual.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal caught, 0 while none is.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    CAUGHT.store(signal, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM only record themselves ([`caught`]).
pub fn catch() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `record` is an `extern "C" fn(c_int)` that does only an atomic
        // store, which is async-signal-safe; the previous handler is not needed.
        unsafe {
            libc::signal(signal, record as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
}

/// The signal caught since [`catch`], if any.
pub fn caught() -> Option<i32> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The exit status of a process that stopped for `signal`, as a shell reports
/// one killed by it: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
pub fn exit_status(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}
