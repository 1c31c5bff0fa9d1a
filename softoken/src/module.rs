//! The module: its slots and tokens, its sessions, and the process-wide
//! state C_Initialize creates and C_Finalize ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use pkcs11_sys::*;

use crate::config::Config;
use crate::rv::{Result, Rv};
use crate::session::SessionCell;
use crate::token::handles::HandleMap;
use crate::token::{Access, Token};

/// Serialises calls when the application supplied its own mutex callbacks
/// (and did not allow OS locking); implemented at the C boundary.
pub trait CallLock: Send + Sync {
    fn lock(&self) -> Result<()>;
    fn unlock(&self);
}

pub struct Slot {
    pub id: CK_SLOT_ID,
    pub description: String,
    /// The token, or why its database did not open: what the calls on
    /// this slot answer (CKR_TOKEN_NOT_PRESENT: no database there;
    /// CKR_TOKEN_NOT_RECOGNIZED: files that are not a database we can read;
    /// CKR_DEVICE_ERROR: files that cannot be read or made).
    pub token: Result<Arc<Token>>,
}

impl Slot {
    /// Whether a token is in the slot: a database is there, if perhaps
    /// not one we can use.
    pub fn token_present(&self) -> bool {
        self.token.as_ref().err() != Some(&Rv::TokenNotPresent)
    }
}

pub struct Module {
    pub config: Config,
    pub slots: Vec<Slot>,
    sessions: RwLock<HandleMap<Arc<SessionCell>>>,
    next_session: AtomicU64,
    call_lock: Option<Box<dyn CallLock>>,
}

impl Module {
    pub fn new(config: Config, call_lock: Option<Box<dyn CallLock>>) -> Result<Module> {
        let mut slots = Vec::new();
        // A database that does not open leaves its slot with the reason,
        // not C_Initialize failed: C_Initialize has no code that says why
        // (the log does), and the module's other tokens still serve.
        for tc in &config.tokens {
            slots.push(Slot {
                id: tc.slot_id,
                description: tc.slot_description.clone(),
                token: Token::open(tc.clone()).map(Arc::new),
            });
        }
        Ok(Module {
            config,
            slots,
            sessions: RwLock::new(HandleMap::default()),
            next_session: AtomicU64::new(1),
            call_lock,
        })
    }

    pub fn call_lock(&self) -> Option<&dyn CallLock> {
        self.call_lock.as_deref()
    }

    pub fn slot(&self, id: CK_SLOT_ID) -> Result<&Slot> {
        self.slots
            .iter()
            .find(|s| s.id == id)
            .ok_or(Rv::SlotIdInvalid)
    }

    pub fn token(&self, slot: CK_SLOT_ID) -> Result<&Arc<Token>> {
        self.slot(slot)?.token.as_ref().map_err(|rv| *rv)
    }

    /// (all sessions, read-write sessions) of a slot.
    pub fn session_counts(&self, slot: CK_SLOT_ID) -> (usize, usize) {
        let sessions = self.sessions.read();
        let mut all = 0;
        let mut rw = 0;
        for s in sessions.values() {
            if s.slot == slot {
                all += 1;
                rw += usize::from(s.rw);
            }
        }
        (all, rw)
    }

    /// C_InitToken: only with no session open on the slot, and only on a
    /// writable token.
    pub fn init_token(&self, slot: CK_SLOT_ID, so_pin: &[u8], label: &str) -> Result<()> {
        let token = self.token(slot)?;
        if self.session_counts(slot).0 > 0 {
            return Err(Rv::SessionExists);
        }
        if token.is_read_only() {
            return Err(Rv::TokenWriteProtected);
        }
        token.init_token(so_pin, label)
    }

    pub fn open_session(&self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Rv::SessionParallelNotSupported);
        }
        let token = self.token(slot)?;
        // A write-protected token still opens read-write sessions, as NSS's
        // softoken does (NSS's callers ask for them on read-only databases);
        // writes to the token then fail with CKR_TOKEN_WRITE_PROTECTED.
        let rw = flags & CKF_RW_SESSION != 0;
        if !rw && token.so_logged_in() {
            return Err(Rv::SessionReadWriteSoExists);
        }
        let h = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.sessions
            .write()
            .insert(h, Arc::new(SessionCell::new(slot, rw)));
        Ok(h)
    }

    /// The session and its token.
    pub fn session(&self, h: CK_SESSION_HANDLE) -> Result<(Arc<SessionCell>, &Token)> {
        let session = self
            .sessions
            .read()
            .get(&h)
            .cloned()
            .ok_or(Rv::SessionHandleInvalid)?;
        // Borrowed, not cloned: the token lives as long as the module, and
        // a shared count would be written by every call on every core.
        let token = self.token(session.slot)?;
        Ok((session, token))
    }

    /// C_Logout: ends the token's login and wipes the keys its sessions
    /// hold decrypted.
    pub fn logout(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let (session, token) = self.session(h)?;
        token.logout()?;
        crate::cache::built::forget_all();
        // Collected first: no session is locked under the table's lock.
        let all: Vec<_> = self.sessions.read().values().cloned().collect();
        for s in all.iter().filter(|s| s.slot == session.slot) {
            s.lock().forget_keys();
        }
        Ok(())
    }

    /// The access rights a session gives.
    pub fn access(&self, h: CK_SESSION_HANDLE) -> Result<(Access, &Token)> {
        let (_, acc, token) = self.session_access(h)?;
        Ok((acc, token))
    }

    /// The session, the access rights it gives, and its token.
    pub fn session_access(
        &self,
        h: CK_SESSION_HANDLE,
    ) -> Result<(Arc<SessionCell>, Access, &Token)> {
        let (session, token) = self.session(h)?;
        let rw = session.rw;
        Ok((session, Access { session: h, rw }, token))
    }

    pub fn close_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let session = self
            .sessions
            .write()
            .remove(&h)
            .ok_or(Rv::SessionHandleInvalid)?;
        let slot = session.slot;
        if let Ok(token) = self.token(slot) {
            token.drop_session_objects(h);
            if self.session_counts(slot).0 == 0 {
                // The last session of an application ends its login.
                token.end_login();
                crate::cache::built::forget_all();
            }
        }
        Ok(())
    }

    pub fn close_all_sessions(&self, slot: CK_SLOT_ID) -> Result<()> {
        let token = self.token(slot)?;
        let handles: Vec<CK_SESSION_HANDLE> = {
            let mut sessions = self.sessions.write();
            let handles: Vec<_> = sessions
                .iter()
                .filter(|(_, s)| s.slot == slot)
                .map(|(h, _)| *h)
                .collect();
            for h in &handles {
                sessions.remove(h);
            }
            handles
        };
        for h in handles {
            token.drop_session_objects(h);
        }
        token.end_login();
        Ok(())
    }

    /// CK_SESSION_INFO.state of a session.
    pub fn session_state(&self, token: &Token, rw: bool) -> CK_STATE {
        match (token.so_logged_in(), token.user_logged_in(), rw) {
            (true, _, _) => CKS_RW_SO_FUNCTIONS,
            (_, true, true) => CKS_RW_USER_FUNCTIONS,
            (_, true, false) => CKS_RO_USER_FUNCTIONS,
            (_, false, true) => CKS_RW_PUBLIC_SESSION,
            (_, false, false) => CKS_RO_PUBLIC_SESSION,
        }
    }

    pub fn has_ro_session(&self, slot: CK_SLOT_ID) -> bool {
        let (all, rw) = self.session_counts(slot);
        all > rw
    }
}

/// The process-wide state. A forked child must never use its parent's
/// database handles or locks, so the state remembers the process that made
/// it: in any other process the module reads as not initialised, and a
/// C_Initialize there starts a new state. The inherited one is never
/// touched again (its locks and SQLite handles belong to the parent).
/// What this process has of the module outside the initialised module
/// itself: `changing` serialises C_Initialize and C_Finalize. It is made
/// again in a child after fork, since a parent's thread may have held it.
struct ProcessState {
    pid: u32,
    changing: Mutex<()>,
}

static STATE: ArcSwapOption<ProcessState> = ArcSwapOption::const_empty();

/// The initialised module and the process that initialised it.
struct Loaded {
    pid: u32,
    module: Module,
}

/// Read on every call through arc-swap's guard, which leaves no shared
/// counter to bounce between cores.
static LOADED: ArcSwapOption<Loaded> = ArcSwapOption::const_empty();

/// Set in a child process by the fork handler: only then can the state be
/// a parent's, so only then does `with` compare pids (getpid is a system
/// call, and `with` runs on every call).
static FORKED: AtomicBool = AtomicBool::new(false);
static FORK_HANDLER: std::sync::Once = std::sync::Once::new();

extern "C" fn note_fork() {
    // An atomic store only: nothing here can panic or allocate.
    FORKED.store(true, Ordering::Relaxed);
}

/// This process's state, creating it when missing or inherited.
fn process_state() -> Arc<ProcessState> {
    FORK_HANDLER.call_once(|| {
        // SAFETY: registers a child handler that only stores an atomic;
        // glibc removes it again if the library is unloaded.
        unsafe {
            libc::pthread_atfork(None, None, Some(note_fork));
        }
    });
    let pid = std::process::id();
    loop {
        let current = STATE.load_full();
        if let Some(s) = current.as_ref().filter(|s| s.pid == pid) {
            return s.clone();
        }
        let fresh = Arc::new(ProcessState {
            pid,
            changing: Mutex::new(()),
        });
        let previous = STATE.compare_and_swap(&current, Some(fresh.clone()));
        let swapped = match (&*previous, &current) {
            (Some(p), Some(c)) => Arc::ptr_eq(p, c),
            (None, None) => true,
            _ => false,
        };
        if swapped {
            return fresh;
        }
    }
}

/// C_Initialize's work after the C boundary checked its arguments.
pub fn initialize(params: Option<&str>, call_lock: Option<Box<dyn CallLock>>) -> Result<()> {
    let state = process_state();
    let _changing = state.changing.lock();
    if loaded_here().is_some() {
        return Err(Rv::CryptokiAlreadyInitialized);
    }
    let config = Config::from_parameters(params)?;
    // Keys built before a fork must not be shared with the parent.
    crate::cache::built::forget_all();
    let module = Module::new(config, call_lock)?;
    let inherited = LOADED.swap(Some(Arc::new(Loaded {
        pid: state.pid,
        module,
    })));
    // A parent's module, inherited by fork, is leaked on purpose: dropping
    // it would close the parent's handles.
    std::mem::forget(inherited);
    Ok(())
}

/// C_Finalize: drops the module (its sessions and databases close once the
/// calls still running in other threads return).
pub fn finalize() -> Result<()> {
    let state = process_state();
    let _changing = state.changing.lock();
    loaded_here().ok_or(Rv::CryptokiNotInitialized)?;
    let loaded = LOADED.swap(None).ok_or(Rv::CryptokiNotInitialized)?;
    for slot in &loaded.module.slots {
        if let Ok(token) = &slot.token {
            token.end_login();
        }
    }
    drop(loaded);
    crate::cache::built::forget_all();
    Ok(())
}

/// The module, if this process (not a parent before fork) initialised it.
fn loaded_here() -> Option<Arc<Loaded>> {
    LOADED.load_full().filter(|l| l.pid == std::process::id())
}

/// Runs `f` with the initialised module of this process.
pub fn with<R>(f: impl FnOnce(&Module) -> Result<R>) -> Result<R> {
    let loaded = LOADED.load();
    let loaded = loaded.as_ref().ok_or(Rv::CryptokiNotInitialized)?;
    if FORKED.load(Ordering::Relaxed) && loaded.pid != std::process::id() {
        return Err(Rv::CryptokiNotInitialized);
    }
    f(&loaded.module)
}
