//! The module's log for users: off unless SOFTOKEN_LOG names where it goes
//! (a file, appended to, or `stderr`). A line says what failed: the file,
//! the operation and the cause in the OS's or SQLite's words. Never a key,
//! a PIN or an attribute value: callers pass paths, codes and error texts.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use once_cell::sync::Lazy;
use parking_lot::Mutex;

type Sink = Mutex<Box<dyn Write + Send>>;

static SINK: Lazy<Option<Sink>> = Lazy::new(|| {
    let target = std::env::var_os("SOFTOKEN_LOG")?;
    if target == "stderr" {
        return Some(Mutex::new(Box::new(std::io::stderr())));
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&target)
        .ok()?;
    Some(Mutex::new(Box::new(file)))
});

/// Writes one line, when the log is on.
pub fn line(args: std::fmt::Arguments<'_>) {
    if let Some(sink) = SINK.as_ref() {
        let _ = writeln!(sink.lock(), "softoken[{}]: {args}", std::process::id());
    }
}
