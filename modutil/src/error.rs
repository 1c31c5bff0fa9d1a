//! A failure of a command: its message and the exit code scripts can test.

use std::fmt;

/// What kind of failure, which decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anything not listed below.
    Failed,
    /// A file, directory, module, certificate or key that is not there.
    NotFound,
    /// A PKCS#11 library that cannot be loaded or initialised.
    BadLibrary,
    /// The password was wrong.
    WrongPassword,
    /// The file or directory cannot be written.
    ReadOnly,
    /// A Firefox profile that Firefox has open.
    InUse,
    /// What was to be created exists already.
    Exists,
    /// The command line lacks what the command needs (as the argument
    /// parser's own usage errors).
    Usage,
}

impl Kind {
    /// Exit codes; 2 is a usage error, the argument parser's or ours.
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::NotFound => 3,
            Kind::BadLibrary => 4,
            Kind::WrongPassword => 5,
            Kind::ReadOnly => 6,
            Kind::InUse => 7,
            Kind::Exists => 8,
            Kind::Usage => 2,
        }
    }
}

/// The help text's table of exit codes.
pub const EXIT_CODES: &str = "Exit codes: 0 success, 1 failure, 2 bad usage, 3 not found, \
4 library cannot be loaded, 5 wrong password, 6 read-only, 7 Firefox profile in use, \
8 already exists.";

#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl Kind {
    /// The kind's name in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Failed => "failed",
            Kind::NotFound => "not-found",
            Kind::BadLibrary => "bad-library",
            Kind::WrongPassword => "wrong-password",
            Kind::ReadOnly => "read-only",
            Kind::InUse => "in-use",
            Kind::Exists => "exists",
            Kind::Usage => "usage",
        }
    }
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// A failed file operation on `path`, classified by its error.
    pub fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> Failure {
        use std::io::ErrorKind;
        let kind = match e.kind() {
            ErrorKind::NotFound => Kind::NotFound,
            // A file this user may not read is no read-only database.
            ErrorKind::PermissionDenied if what.starts_with("read") => Kind::Failed,
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => Kind::ReadOnly,
            ErrorKind::AlreadyExists => Kind::Exists,
            _ => Kind::Failed,
        };
        Failure::new(kind, format!("cannot {what} {}: {e}", path.display()))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Outcome<T> = std::result::Result<T, Failure>;
