//! The verbs' voice: human text on stderr (colored only on a terminal without
//! `NO_COLOR`), data on stdout. A closed stdout or stderr is not a crash: writes to it
//! stop quietly and the process ends with the code the work would have had (SPEC §16,
//! ripgrep's habit).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::edge::Edge;
use crate::report::Report;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// How to talk to the user.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub json: bool,
    pub color: bool,
    /// Whether progress lines are shown: `WB_PROGRESS=1` shows them, `WB_PROGRESS=0`
    /// hides them; otherwise only on a terminal and not under `--json`.
    pub progress: bool,
}

impl Ui {
    pub fn new(edge: &Edge, json: bool) -> Ui {
        Ui {
            json,
            color: !edge.no_color && edge.stderr_tty,
            progress: match edge.vars.get("WB_PROGRESS") {
                Some("1") => true,
                Some("0") => false,
                _ => edge.stderr_tty && !json,
            },
        }
    }

    /// A line of human text on stderr.
    pub fn say(&self, text: &str) {
        err(&format!("{text}\n"));
    }

    /// Bold green (or plain) for a success line.
    pub fn green(&self, text: &str) -> String {
        self.paint("1;32", text)
    }

    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

impl Report for Ui {
    fn info(&self, text: &str) {
        self.say(text);
    }

    fn good(&self, text: &str) {
        self.say(&self.green(text));
    }

    fn warn(&self, text: &str) {
        self.say(&format!("warning: {text}"));
    }

    fn progress(&self, text: &str) {
        if self.progress {
            self.say(text);
        }
    }
}

/// Writes to stdout; after the reader went away, nothing more is written. Control and
/// bidi characters (from a file, a recipe, the environment) are escaped
/// ([`crate::core::escape`]); inside JSON strings the escape is JSON's own `\uXXXX`.
pub fn out(text: &str) {
    let text = crate::core::escape::escape(text);
    write(&STDOUT_CLOSED, &mut std::io::stdout().lock(), &text);
}

/// Writes to stderr; after it closed, nothing more is written. Every message passes
/// here, so no terminal escape or bidi control from a file reaches the terminal raw;
/// the kit's own colors are kept.
pub fn err(text: &str) {
    let text = crate::core::escape::for_terminal(text);
    write(&STDERR_CLOSED, &mut std::io::stderr().lock(), &text);
}

fn write(closed: &AtomicBool, stream: &mut dyn Write, text: &str) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if stream
        .write_all(text.as_bytes())
        .and_then(|()| stream.flush())
        .is_err()
    {
        // EPIPE (the reader left) or any other failure to write: the user cannot
        // hear us on this stream any more; the work's exit code still stands.
        closed.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(tty: bool, progress: Option<&str>) -> Edge {
        let vars = progress.map(|v| ("WB_PROGRESS".into(), v.into()));
        let mut edge = Edge::with_vars(Vec::new(), crate::edge::Vars::new(vars), "/".into());
        edge.stderr_tty = tty;
        edge
    }

    #[test]
    fn progress_shows_on_a_terminal_unless_json_and_when_asked() {
        assert!(Ui::new(&edge(true, None), false).progress);
        assert!(
            !Ui::new(&edge(true, None), true).progress,
            "--json is quiet"
        );
        assert!(
            !Ui::new(&edge(false, None), false).progress,
            "a pipe is quiet"
        );
        assert!(Ui::new(&edge(false, Some("1")), true).progress, "asked");
        assert!(!Ui::new(&edge(true, Some("0")), false).progress, "refused");
    }
}
