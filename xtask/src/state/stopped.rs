//! What `down` leaves: the last-applied record goes (the next apply must converge),
//! and a `stopped` marker says the deployment was applied from this machine, so `plan`
//! says "start again", not "never applied". The marker means nothing once a newer
//! record exists.

use std::path::Path;

const MARKER: &str = "stopped";

/// Marks the deployment in `dir` as stopped by `down` (if its state dir exists).
pub fn mark(dir: &Path) {
    if dir.is_dir() {
        let _ = super::atomic_write(&dir.join(MARKER), b"stopped by down\n", 0o600);
    }
}

/// Whether `down` stopped it and no apply has recorded anything since.
pub fn is_stopped(dir: &Path) -> bool {
    dir.join(MARKER).is_file() && super::last_applied(dir).is_none()
}
