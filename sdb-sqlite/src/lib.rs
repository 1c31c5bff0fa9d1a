//! The SQLite backend, in NSS's exact schema (`nssPublic` in cert9.db,
//! `nssPrivate` and `metaData` in key4.db).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, MutexGuard, RwLock};
use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension};

use sdb::{
    AttrType, Attribute, Backend, Databases, Error, FindCursor, Metadata, ObjectId, OpenOptions,
    Result, Sdb, SdbRead, Transaction, MAX_OBJECT_ID,
};

/// Permissions of database files we create (NSS makes them 0600 too).
pub const DB_FILE_MODE: u32 = 0o600;

/// Stored for a zero-length value: SQLite could not tell an empty blob from
/// NULL once bound through some interfaces, so NSS writes this marker.
const EMPTY_VALUE: [u8; 3] = [0xa5, 0x00, 0x5a];

/// How long one statement waits for another process's lock.
const BUSY_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often a busy BEGIN, COMMIT or read is tried again (each waits BUSY_TIMEOUT).
const BUSY_RETRIES: u32 = 30;
/// How many ids `create_object` tries before it gives up.
const ID_ATTEMPTS: u32 = 100_000;

/// The attribute columns NSS 3.87 creates, in its order. Columns for other
/// types are added when first needed, as newer NSS versions do.
const NSS_COLUMNS: &str = "a0, a1, a2, a3, a10, a11, a12, a80, a81, a82, a83, a84, a85, a86, \
a87, a88, a89, a8a, a8b, a90, a100, a101, a102, a103, a104, a105, a106, a107, a108, a109, a10a, \
a10b, a10c, a110, a111, a120, a121, a122, a123, a124, a125, a126, a127, a128, a129, a130, a131, \
a132, a133, a134, a160, a161, a162, a163, a164, a165, a166, a170, a180, a181, a200, a201, a202, \
a210, a300, a301, a302, a400, a401, a402, a403, a404, a405, a406, a480, a481, a482, a500, a501, \
a502, a503, a40000211, a40000212, a80000001, ace534351, ace534352, ace534353, ace534354, \
ace534355, ace534356, ace534357, ace534358, ace534364, ace534365, ace534366, ace534367, \
ace534368, ace534369, ace534373, ace534374, ace536351, ace536352, ace536353, ace536354, \
ace536355, ace536356, ace536357, ace536358, ace536359, ace53635a, ace53635b, ace53635c, \
ace53635d, ace53635e, ace53635f, ace536360, ace5363b4, ace5363b5, ad5a0db00";

/// NSS's four indexes: (index name, attribute column).
const NSS_INDEXES: [(&str, &str); 4] = [
    ("issuer", "a81"),
    ("subject", "a101"),
    ("label", "a3"),
    ("ckaid", "a102"),
];

const META_TABLE: &str = "metaData";

fn column_name(t: AttrType) -> String {
    format!("a{t:x}")
}

fn column_type(name: &str) -> Option<AttrType> {
    let hex = name.strip_prefix('a')?;
    AttrType::from_str_radix(hex, 16).ok()
}

fn to_stored(v: &[u8]) -> &[u8] {
    if v.is_empty() {
        &EMPTY_VALUE
    } else {
        v
    }
}

fn from_stored(v: ValueRef<'_>) -> Result<Option<Vec<u8>>> {
    let bytes = match v {
        ValueRef::Null => return Ok(None),
        ValueRef::Blob(b) | ValueRef::Text(b) => b,
        ValueRef::Integer(_) | ValueRef::Real(_) => {
            return Err(Error::Corrupt("attribute stored as a number".into()))
        }
    };
    Ok(Some(if bytes == EMPTY_VALUE {
        Vec::new()
    } else {
        bytes.to_vec()
    }))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn is_missing_meta_table(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(_, Some(msg)) if msg.contains("no such table"))
}

fn sql_err(e: rusqlite::Error) -> Error {
    if is_busy(&e) {
        Error::Busy
    } else if e.sqlite_error_code() == Some(ErrorCode::ReadOnly) {
        // Files or a directory this process may not write.
        Error::ReadOnly
    } else if e.sqlite_error_code() == Some(ErrorCode::DatabaseCorrupt) {
        Error::Corrupt(e.to_string())
    } else {
        Error::Backend {
            backend: "sqlite",
            message: e.to_string(),
        }
    }
}

/// Which attribute columns a table has, as of one schema version.
#[derive(Default)]
struct Columns {
    schema_version: i64,
    types: HashSet<AttrType>,
}

/// The two databases of one token.
pub struct Opened {
    pub cert: SqlDb,
    pub key: SqlDb,
    /// Whether either database was created by this open (drives update).
    pub created: bool,
}

/// This backend, for a module's registry: `sql:` (and NSS's `extern:`).
pub const BACKEND: Backend = Backend {
    prefix: "sql",
    aliases: &["extern"],
    key_file: "key4.db",
    cert_file: "cert9.db",
    open: open_databases,
};

fn open_databases(opts: &OpenOptions) -> Result<Databases> {
    let opened = open(opts)?;
    Ok(Databases {
        cert: Box::new(opened.cert),
        key: Box::new(opened.key),
    })
}

/// Opens (and for read-write, creates when missing) `cert9.db` and `key4.db`.
/// A file already there must be NSS's (checked for both before either is
/// created or written).
pub fn open(opts: &OpenOptions) -> Result<Opened> {
    let cert_path = opts.dir.join(format!("{}cert9.db", opts.cert_prefix));
    let key_path = opts.dir.join(format!("{}key4.db", opts.key_prefix));
    recognise(&cert_path, "nssPublic")?;
    recognise(&key_path, "nssPrivate")?;
    // SQLite writes its journal beside the database: in a directory this
    // process may not write, every write would fail. Say so now, so that
    // the caller opens the files read-only and shows it.
    if !opts.read_only && !writable(&opts.dir) {
        return Err(Error::ReadOnly);
    }
    let (cert, cert_created) =
        SqlDb::open(&cert_path, "nssPublic", opts.read_only).map_err(|e| of_file(&cert_path, e))?;
    let (key, key_created) =
        SqlDb::open(&key_path, "nssPrivate", opts.read_only).map_err(|e| of_file(&key_path, e))?;
    Ok(Opened {
        cert,
        key,
        created: cert_created || key_created,
    })
}

/// An error opening `path`, saying which file it was.
fn of_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("{}: {m}", path.display())),
        Error::Backend { backend, message } => Error::Backend {
            backend,
            message: format!("{}: {message}", path.display()),
        },
        other => other,
    }
}

/// One SQLite database file holding one object table.
pub struct SqlDb {
    path: PathBuf,
    table: &'static str,
    read_only: bool,
    reader: Mutex<Connection>,
    /// Opened on the first transaction; one transaction at a time.
    writer: Mutex<Option<Connection>>,
    columns: RwLock<Columns>,
}

impl std::fmt::Debug for SqlDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlDb")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
    Ok(conn)
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether this process (its effective ids) may create files in `dir`.
fn writable(dir: &Path) -> bool {
    use rustix::fs::{accessat, Access, AtFlags, CWD};
    accessat(
        CWD,
        dir,
        Access::WRITE_OK | Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .is_ok()
}

/// NSS's object table and its indexes, in `conn`'s open transaction.
fn create_tables(conn: &Connection, table: &str) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE {table} (id PRIMARY KEY UNIQUE ON CONFLICT ABORT, {NSS_COLUMNS});"
    ))
    .map_err(sql_err)?;
    for (name, column) in NSS_INDEXES {
        conn.execute_batch(&format!("CREATE INDEX {name} ON {table} ({column});"))
            .map_err(sql_err)?;
    }
    Ok(())
}

/// Makes a new database file whole: made private (mode 0600) under a
/// temporary name, given its table, and only then moved to `path`, never
/// over a file another process put there first. So no process ever sees,
/// and no crash leaves, a database file without NSS's table (which the
/// next open would refuse as not NSS's). Returns whether this call made it.
fn create_whole(path: &Path, table: &str) -> Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    // A file of that name is what a killed process of the same id left.
    let _ = fs::remove_file(&temporary);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DB_FILE_MODE)
        .open(&temporary)
        .map_err(|e| io_err(&temporary, e))?;
    let made = (|| {
        let conn = open_connection(&temporary, false)?;
        conn.execute_batch("BEGIN").map_err(sql_err)?;
        create_tables(&conn, table)?;
        conn.execute_batch("COMMIT").map_err(sql_err)?;
        drop(conn);
        match renameat_with(CWD, &temporary, CWD, path, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(true),
            // Another process made it first: theirs is kept.
            Err(rustix::io::Errno::EXIST) => Ok(false),
            // A file system without the no-replace rename: a hard link
            // also never replaces a file.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                match fs::hard_link(&temporary, path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(io_err(path, e)),
                }
            }
            Err(e) => Err(io_err(path, e.into())),
        }
    })();
    let _ = fs::remove_file(&temporary);
    made
}

/// How long a file without NSS's table is watched for one to appear: the
/// time NSS (or this backend) takes between creating a database file and
/// committing its schema.
const SCHEMA_WAIT: Duration = Duration::from_secs(2);

/// Checks that a file already at `path` is an NSS database (holds `table`),
/// reading it only. A file without the table may be one another process is
/// creating this moment: it is given SCHEMA_WAIT to get it. What is still
/// without it (an empty file, another application's database) or is no
/// SQLite database at all is NotRecognized, and left as it is.
fn recognise(path: &Path, table: &str) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let not_ours = |why: &str| {
        Error::NotRecognized(format!(
            "{} is not an NSS database ({why}); it is left as it is",
            path.display()
        ))
    };
    let started = std::time::Instant::now();
    let conn = open_connection(path, true)?;
    loop {
        let tables: rusqlite::Result<Vec<String>> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type='table'")
            .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect());
        let tables = match tables {
            Ok(t) => t,
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
                return Err(not_ours("not an SQLite database"));
            }
            Err(e) => return Err(of_file(path, sql_err(e))),
        };
        if tables.iter().any(|t| t == table) {
            return Ok(());
        }
        if started.elapsed() >= SCHEMA_WAIT {
            let why = if tables.is_empty() {
                match fs::metadata(path) {
                    Ok(m) if m.len() == 0 => "an empty file".to_string(),
                    _ => "an SQLite database without tables".to_string(),
                }
            } else {
                format!(
                    "another application's SQLite database: {}",
                    tables.join(", ")
                )
            };
            return Err(not_ours(&why));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl SqlDb {
    /// Opens one file; returns whether its table was created now.
    fn open(path: &Path, table: &'static str, read_only: bool) -> Result<(SqlDb, bool)> {
        let mut made = false;
        if !read_only {
            if !path.exists() {
                made = create_whole(path, table)?;
            }
            // SQLite would quietly open a file it may not write read-only;
            // say so now, so that the caller can open it read-only.
            match fs::OpenOptions::new().write(true).open(path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(Error::ReadOnly)
                }
                Err(e) => return Err(io_err(path, e)),
            }
        } else if !path.exists() {
            return Err(io_err(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such database"),
            ));
        }
        let reader = open_connection(path, read_only)?;
        let db = SqlDb {
            path: path.to_owned(),
            table,
            read_only,
            reader: Mutex::new(reader),
            writer: Mutex::new(None),
            columns: RwLock::new(Columns {
                schema_version: -1,
                types: HashSet::new(),
            }),
        };
        let created = if read_only {
            if !db.table_exists()? {
                return Err(Error::Corrupt(format!(
                    "{} has no table {table}",
                    path.display()
                )));
            }
            false
        } else {
            db.create_schema()? || made
        };
        Ok((db, created))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn table_exists(&self) -> Result<bool> {
        let conn = self.reader.lock();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
                [self.table],
                |r| r.get(0),
            )
            .map_err(sql_err)?;
        Ok(n > 0)
    }

    /// Creates the object table and its indexes when missing.
    fn create_schema(&self) -> Result<bool> {
        if self.table_exists()? {
            return Ok(false);
        }
        let mut txn = self.begin_txn()?;
        let conn = txn.conn();
        let exists: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
                [self.table],
                |r| r.get(0),
            )
            .map_err(sql_err)?;
        if exists > 0 {
            // Another process created it meanwhile.
            return Ok(false);
        }
        create_tables(conn, self.table)?;
        Box::new(txn).commit()?;
        Ok(true)
    }

    fn begin_txn(&self) -> Result<SqlTransaction<'_>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let mut guard = self.writer.lock();
        if guard.is_none() {
            *guard = Some(open_connection(&self.path, false)?);
        }
        let conn = guard.as_ref().ok_or(Error::ReadOnly)?;
        retrying(|| conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_err))?;
        Ok(SqlTransaction {
            db: self,
            conn: guard,
            done: false,
            schema_changed: false,
        })
    }

    fn reader(&self) -> Reader<'_, MutexGuard<'_, Connection>> {
        Reader {
            conn: self.reader.lock(),
            db: self,
        }
    }
}

/// Read queries, run on whichever connection the caller holds.
struct Reader<'a, C: std::ops::Deref<Target = Connection>> {
    conn: C,
    db: &'a SqlDb,
}

impl<C: std::ops::Deref<Target = Connection>> Reader<'_, C> {
    /// Refreshes the column cache when the schema changed since it was read.
    fn refresh_columns(&self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(sql_err)?;
        if self.db.columns.read().schema_version == version {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", self.db.table))
            .map_err(sql_err)?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .map_err(sql_err)?;
        let mut types = HashSet::new();
        for name in names {
            if let Some(t) = column_type(&name.map_err(sql_err)?) {
                types.insert(t);
            }
        }
        *self.db.columns.write() = Columns {
            schema_version: version,
            types,
        };
        Ok(())
    }

    fn has_column(&self, t: AttrType) -> Result<bool> {
        if self.db.columns.read().types.contains(&t) {
            return Ok(true);
        }
        self.refresh_columns()?;
        Ok(self.db.columns.read().types.contains(&t))
    }

    fn find(&self, template: &[(AttrType, &[u8])]) -> Result<FindCursor> {
        let mut sql = format!("SELECT ALL id FROM {}", self.db.table);
        for (i, (t, _)) in template.iter().enumerate() {
            if !self.has_column(*t)? {
                // No object can have an attribute that has no column.
                return Ok(FindCursor::default());
            }
            sql.push_str(if i == 0 { " WHERE " } else { " AND " });
            sql.push_str(&format!("{}=?{}", column_name(*t), i + 1));
        }
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let rows = stmt
            .query_map(
                params_from_iter(template.iter().map(|(_, v)| to_stored(v))),
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql_err)?;
        let mut ids = Vec::new();
        for id in rows {
            let id = id.map_err(sql_err)?;
            match ObjectId::try_from(id) {
                Ok(id) if id != 0 && id <= MAX_OBJECT_ID => ids.push(id),
                _ => return Err(Error::Corrupt(format!("object id {id} out of range"))),
            }
        }
        Ok(FindCursor::new(ids))
    }

    fn get_attributes(&self, id: ObjectId, types: &[AttrType]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut present = Vec::with_capacity(types.len());
        for t in types {
            if self.has_column(*t)? {
                present.push(*t);
            }
        }
        let columns: Vec<String> = present.iter().map(|t| column_name(*t)).collect();
        let sql = format!(
            "SELECT id{}{} FROM {} WHERE id=?1",
            if columns.is_empty() { "" } else { ", " },
            columns.join(", "),
            self.db.table
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let row = stmt
            .query_row([id], |r| {
                let mut values = Vec::with_capacity(present.len());
                for i in 0..present.len() {
                    values.push(from_stored(r.get_ref(i + 1)?));
                }
                Ok(values)
            })
            .optional()
            .map_err(sql_err)?
            .ok_or(Error::NotFound(id))?;
        // `present` is the subsequence of `types` that has columns, in order.
        let mut values = row.into_iter();
        let mut present = present.iter().peekable();
        let mut out = Vec::with_capacity(types.len());
        for t in types {
            if present.peek() == Some(&t) {
                present.next();
                out.push(values.next().transpose()?.flatten());
            } else {
                out.push(None);
            }
        }
        Ok(out)
    }

    fn read_object(&self, id: ObjectId) -> Result<Vec<Attribute>> {
        let sql = format!("SELECT * FROM {} WHERE id=?1", self.db.table);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let names: Vec<Option<AttrType>> =
            stmt.column_names().into_iter().map(column_type).collect();
        let attrs = stmt
            .query_row([id], |r| {
                let mut attrs = Vec::new();
                for (i, t) in names.iter().enumerate() {
                    if let Some(t) = t {
                        attrs.push((*t, from_stored(r.get_ref(i)?)));
                    }
                }
                Ok(attrs)
            })
            .optional()
            .map_err(sql_err)?
            .ok_or(Error::NotFound(id))?;
        let mut out = Vec::with_capacity(attrs.len());
        for (t, v) in attrs {
            if let Some(v) = v? {
                out.push((t, v));
            }
        }
        Ok(out)
    }

    fn exists(&self, id: ObjectId) -> Result<bool> {
        let sql = format!("SELECT 1 FROM {} WHERE id=?1", self.db.table);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        stmt.exists([id]).map_err(sql_err)
    }

    fn get_metadata(&self, id: &str) -> Result<Option<Metadata>> {
        let stmt = self
            .conn
            .prepare_cached("SELECT item1, item2 FROM metaData WHERE id=?1");
        let mut stmt = match stmt {
            Ok(s) => s,
            Err(e) if is_missing_meta_table(&e) => return Ok(None),
            Err(e) => return Err(sql_err(e)),
        };
        let row = stmt
            .query_row([id], |r| {
                Ok((meta_value(r.get_ref(0)?), meta_value(r.get_ref(1)?)))
            })
            .optional()
            .map_err(sql_err)?;
        Ok(row.map(|(item1, item2)| Metadata {
            item1: item1.unwrap_or_default(),
            item2,
        }))
    }

    fn metadata_ids(&self, prefix: &str) -> Result<Vec<String>> {
        let stmt = self
            .conn
            .prepare_cached("SELECT id FROM metaData WHERE substr(id, 1, length(?1)) = ?1");
        let mut stmt = match stmt {
            Ok(s) => s,
            Err(e) if is_missing_meta_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(sql_err(e)),
        };
        let rows = stmt
            .query_map([prefix], |r| r.get::<_, String>(0))
            .map_err(sql_err)?;
        rows.map(|r| r.map_err(sql_err)).collect()
    }
}

/// Metadata values are blobs; NSS stores ids as text and items as blobs.
fn meta_value(v: ValueRef<'_>) -> Option<Vec<u8>> {
    match v {
        ValueRef::Null => None,
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
        ValueRef::Integer(i) => Some(i.to_string().into_bytes()),
        ValueRef::Real(f) => Some(f.to_string().into_bytes()),
    }
}

/// A step that found the database busy (another process holding its lock
/// past one busy timeout) is tried again: BEGIN, COMMIT and every read;
/// Busy reaches the caller only after all the tries.
fn retrying<T>(mut step: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 0;
    loop {
        match step() {
            Err(Error::Busy) if attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
            }
            done => return done,
        }
    }
}

impl SdbRead for SqlDb {
    fn find(&self, template: &[(AttrType, &[u8])]) -> Result<FindCursor> {
        retrying(|| self.reader().find(template))
    }
    fn get_attributes(&self, id: ObjectId, types: &[AttrType]) -> Result<Vec<Option<Vec<u8>>>> {
        retrying(|| self.reader().get_attributes(id, types))
    }
    fn read_object(&self, id: ObjectId) -> Result<Vec<Attribute>> {
        retrying(|| self.reader().read_object(id))
    }
    fn exists(&self, id: ObjectId) -> Result<bool> {
        retrying(|| self.reader().exists(id))
    }
    fn get_metadata(&self, id: &str) -> Result<Option<Metadata>> {
        retrying(|| self.reader().get_metadata(id))
    }
    fn metadata_ids(&self, prefix: &str) -> Result<Vec<String>> {
        retrying(|| self.reader().metadata_ids(prefix))
    }
}

impl Sdb for SqlDb {
    fn begin(&self) -> Result<Box<dyn Transaction + '_>> {
        Ok(Box::new(self.begin_txn()?))
    }
    fn is_read_only(&self) -> bool {
        self.read_only
    }
}

/// A write transaction on the writer connection, which it holds until it
/// commits or is dropped (which rolls back).
struct SqlTransaction<'a> {
    db: &'a SqlDb,
    conn: MutexGuard<'a, Option<Connection>>,
    done: bool,
    /// A column was added: the cache must be re-read if we roll back.
    schema_changed: bool,
}

/// The counter new ids come from, shared by every database of the process
/// (as NSS does, a key and its certificate get neighbouring ids).
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

/// The next candidate id; the counter starts from the clock (microseconds),
/// so ids from different runs rarely meet.
fn candidate_id(reseed: bool) -> ObjectId {
    if reseed || NEXT_ID.load(Ordering::Relaxed) == 0 {
        let seed = if reseed {
            random_u32()
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u32)
                .unwrap_or_else(|_| random_u32())
        };
        NEXT_ID.store(seed & MAX_OBJECT_ID, Ordering::Relaxed);
    }
    NEXT_ID.fetch_add(1, Ordering::Relaxed) & MAX_OBJECT_ID
}

impl SqlTransaction<'_> {
    fn conn(&mut self) -> &Connection {
        // The guard holds Some from begin_txn until drop.
        self.conn.as_ref().expect("transaction connection is open")
    }

    fn reader(&self) -> Reader<'_, &Connection> {
        Reader {
            conn: self.conn.as_ref().expect("transaction connection is open"),
            db: self.db,
        }
    }

    /// Adds columns for attribute types the table does not have yet.
    fn ensure_columns(&mut self, attrs: &[(AttrType, &[u8])]) -> Result<()> {
        for (t, _) in attrs {
            if !self.reader().has_column(*t)? {
                let sql = format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    self.db.table,
                    column_name(*t)
                );
                self.conn().execute_batch(&sql).map_err(sql_err)?;
                self.schema_changed = true;
                self.reader().refresh_columns()?;
            }
        }
        Ok(())
    }

    fn insert(&mut self, id: ObjectId, attrs: &[(AttrType, &[u8])]) -> Result<()> {
        self.ensure_columns(attrs)?;
        let mut columns = String::from("id");
        let mut marks = String::from("?1");
        for (i, (t, _)) in attrs.iter().enumerate() {
            columns.push_str(", ");
            columns.push_str(&column_name(*t));
            marks.push_str(&format!(", ?{}", i + 2));
        }
        let sql = format!("INSERT INTO {} ({columns}) VALUES ({marks})", self.db.table);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
        let id_value = rusqlite::types::Value::Integer(i64::from(id));
        let values = std::iter::once(id_value).chain(
            attrs
                .iter()
                .map(|(_, v)| rusqlite::types::Value::Blob(to_stored(v).to_vec())),
        );
        stmt.execute(params_from_iter(values)).map_err(sql_err)?;
        Ok(())
    }
}

impl SdbRead for SqlTransaction<'_> {
    fn find(&self, template: &[(AttrType, &[u8])]) -> Result<FindCursor> {
        self.reader().find(template)
    }
    fn get_attributes(&self, id: ObjectId, types: &[AttrType]) -> Result<Vec<Option<Vec<u8>>>> {
        self.reader().get_attributes(id, types)
    }
    fn read_object(&self, id: ObjectId) -> Result<Vec<Attribute>> {
        self.reader().read_object(id)
    }
    fn exists(&self, id: ObjectId) -> Result<bool> {
        self.reader().exists(id)
    }
    fn get_metadata(&self, id: &str) -> Result<Option<Metadata>> {
        self.reader().get_metadata(id)
    }
    fn metadata_ids(&self, prefix: &str) -> Result<Vec<String>> {
        self.reader().metadata_ids(prefix)
    }
}

impl Transaction for SqlTransaction<'_> {
    fn create_object(&mut self, attrs: &[(AttrType, &[u8])]) -> Result<ObjectId> {
        let mut reseed = false;
        for attempt in 0..ID_ATTEMPTS {
            let id = candidate_id(reseed);
            // After a run of taken ids (another process counting from a
            // nearby clock value), jump elsewhere.
            reseed = attempt % 64 == 63;
            if id == 0 || self.exists(id)? {
                continue;
            }
            self.insert(id, attrs)?;
            return Ok(id);
        }
        Err(Error::IdsExhausted)
    }

    fn create_object_with_id(&mut self, id: ObjectId, attrs: &[(AttrType, &[u8])]) -> Result<()> {
        if id == 0 || id > MAX_OBJECT_ID {
            return Err(Error::Corrupt(format!("object id {id:#x} out of range")));
        }
        self.insert(id, attrs)
    }

    fn set_attributes(&mut self, id: ObjectId, attrs: &[(AttrType, &[u8])]) -> Result<()> {
        if attrs.is_empty() {
            return if self.exists(id)? {
                Ok(())
            } else {
                Err(Error::NotFound(id))
            };
        }
        self.ensure_columns(attrs)?;
        let sets: Vec<String> = attrs
            .iter()
            .enumerate()
            .map(|(i, (t, _))| format!("{}=?{}", column_name(*t), i + 2))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE id=?1",
            self.db.table,
            sets.join(", ")
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
        let values = std::iter::once(rusqlite::types::Value::Integer(i64::from(id))).chain(
            attrs
                .iter()
                .map(|(_, v)| rusqlite::types::Value::Blob(to_stored(v).to_vec())),
        );
        let changed = stmt.execute(params_from_iter(values)).map_err(sql_err)?;
        if changed == 0 {
            return Err(Error::NotFound(id));
        }
        Ok(())
    }

    fn destroy_object(&mut self, id: ObjectId) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE id=?1", self.db.table);
        let conn = self.conn();
        let changed = conn
            .prepare_cached(&sql)
            .map_err(sql_err)?
            .execute([id])
            .map_err(sql_err)?;
        if changed == 0 {
            return Err(Error::NotFound(id));
        }
        Ok(())
    }

    fn put_metadata(&mut self, id: &str, item1: &[u8], item2: Option<&[u8]>) -> Result<()> {
        let conn = self.conn();
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {META_TABLE} \
             (id PRIMARY KEY UNIQUE ON CONFLICT REPLACE, item1, item2)"
        ))
        .map_err(sql_err)?;
        conn.prepare_cached("INSERT INTO metaData (id, item1, item2) VALUES (?1, ?2, ?3)")
            .map_err(sql_err)?
            .execute(rusqlite::params![id, item1, item2])
            .map_err(sql_err)?;
        Ok(())
    }

    fn delete_metadata(&mut self, id: &str) -> Result<()> {
        let conn = self.conn();
        match conn.prepare_cached("DELETE FROM metaData WHERE id=?1") {
            Ok(mut stmt) => {
                stmt.execute([id]).map_err(sql_err)?;
                Ok(())
            }
            Err(e) if is_missing_meta_table(&e) => Ok(()),
            Err(e) => Err(sql_err(e)),
        }
    }

    fn reset(&mut self) -> Result<()> {
        let table = self.db.table;
        let conn = self.conn();
        conn.execute_batch(&format!("DELETE FROM {table}"))
            .map_err(sql_err)?;
        match conn.execute_batch("DELETE FROM metaData") {
            Ok(()) => Ok(()),
            Err(e) if is_missing_meta_table(&e) => Ok(()),
            Err(e) => Err(sql_err(e)),
        }
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        // Readers in other processes still holding their locks are waited
        // for; an error leaves the transaction to Drop, which rolls back.
        retrying(|| self.conn().execute_batch("COMMIT").map_err(sql_err))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for SqlTransaction<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(conn) = self.conn.as_ref() {
            if !conn.is_autocommit() {
                // Nothing useful can be done with a failed rollback here: the
                // connection is discarded below so the next transaction starts
                // clean.
                if conn.execute_batch("ROLLBACK").is_err() {
                    *self.conn = None;
                }
            }
        }
        if self.schema_changed {
            // The columns this transaction added are gone again.
            self.db.columns.write().schema_version = -1;
            self.db.columns.write().types.clear();
        }
    }
}
