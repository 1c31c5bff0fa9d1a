//! The module's log for users: off unless SOFTOKEN_LOG, or else the `log=`
//! parameter (of the parameter string or the configuration file), names
//! where it goes (a file, appended to, or `stderr`). A line says what
//! failed: the file, the operation and the cause in the OS's or SQLite's
//! words. Never a key, a PIN or an attribute value: callers pass paths,
//! codes and error texts.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use once_cell::sync::Lazy;
use parking_lot::Mutex;

type Sink = Box<dyn Write + Send>;

/// The environment's choice, made at the first line; a parameter may
/// switch on a log the environment left off.
static SINK: Lazy<Mutex<Option<Sink>>> =
    Lazy::new(|| Mutex::new(std::env::var_os("SOFTOKEN_LOG").and_then(|t| open(&t))));

fn open(target: &OsStr) -> Option<Sink> {
    if target == "stderr" {
        return Some(Box::new(std::io::stderr()));
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(target)
        .ok()?;
    Some(Box::new(file))
}

/// The `log=` parameter: where the log goes when SOFTOKEN_LOG does not
/// say (the environment wins; the first parameter that names one stays).
pub fn configure(parameter: Option<&str>) {
    let Some(target) = parameter.filter(|t| !t.is_empty()) else {
        return;
    };
    let mut sink = SINK.lock();
    if sink.is_none() {
        *sink = open(OsStr::new(target));
    }
}

/// Writes one line, when the log is on.
pub fn line(args: std::fmt::Arguments<'_>) {
    if let Some(sink) = SINK.lock().as_mut() {
        let _ = writeln!(sink, "softoken[{}]: {args}", std::process::id());
    }
}
