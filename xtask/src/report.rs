//! How a place (local backends, provider recipes) tells the user what it is doing
//! without printing: the verb hands it a [`Report`], and the verb alone decides where
//! and how the words go (stderr, colored or not).

pub trait Report {
    /// A line of progress or explanation.
    fn info(&self, text: &str);
    /// A success line (green on a terminal).
    fn good(&self, text: &str);
    /// A warning (`warning: …`).
    fn warn(&self, text: &str);
    /// Progress on a long step (a build, a wait, a provider call): shown on a terminal,
    /// quiet under `--json` or a redirected stderr unless `WB_PROGRESS=1` asks for it.
    /// Dropped by default.
    fn progress(&self, text: &str) {
        let _ = text;
    }
}

/// A report that drops everything (probes whose words nobody asked for).
pub struct Silent;

impl Report for Silent {
    fn info(&self, _: &str) {}
    fn good(&self, _: &str) {}
    fn warn(&self, _: &str) {}
}
