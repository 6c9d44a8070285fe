//! The kit's one error type, and its one mapping to an exit code and a JSON error
//! object (`{"kind", "message"}`, SPEC §18).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The work failed: exit 1.
    Failed(String),
    /// A provider recipe's action failed: its own exit code passes through.
    Recipe {
        action: &'static str,
        code: i32,
        message: String,
    },
    /// SIGINT (130) or SIGTERM (143) ended the work.
    Interrupted { code: i32, message: String },
}

impl Error {
    pub fn code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Failed(_) => 1,
            Error::Recipe { code, .. } | Error::Interrupted { code, .. } => *code,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::Failed(_) => "failed",
            Error::Recipe { .. } => "recipe",
            Error::Interrupted { .. } => "interrupted",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Usage(m) | Error::Failed(m) => m,
            Error::Recipe { message, .. } | Error::Interrupted { message, .. } => message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::Failed(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::Failed(message.to_string())
    }
}
