//! Eight threads of one process on one token: four on sessions of their
//! own, four sharing one session (serialising only what PKCS#11 says a
//! caller must: one operation at a time on a session), each generating,
//! creating, signing and destroying; under C_Initialize(NULL), with
//! CKF_OS_LOCKING_OK, and with the application's own mutex callbacks. No
//! deadlock (the test bounds itself), every signature verifies, every
//! object made is there and every one destroyed is gone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use pkcs11_sys::*;
use softoken_tests::raw::{ul, Raw, FALSE, TRUE};
use softoken_tests::*;

const THREADS: usize = 8;
const ROUNDS: usize = 25;

/// The application's mutexes: spin locks the module must create, lock and
/// unlock through the callbacks.
static APP_LOCKS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn create_mutex(out: CK_VOID_PTR_PTR) -> CK_RV {
    let lock = Box::new(AtomicBool::new(false));
    // SAFETY: the module passes a valid out pointer.
    unsafe { *out = Box::into_raw(lock) as CK_VOID_PTR };
    CKR_OK
}

extern "C" fn destroy_mutex(m: CK_VOID_PTR) -> CK_RV {
    // SAFETY: `m` came from create_mutex and is destroyed once.
    drop(unsafe { Box::from_raw(m as *mut AtomicBool) });
    CKR_OK
}

extern "C" fn lock_mutex(m: CK_VOID_PTR) -> CK_RV {
    // SAFETY: `m` came from create_mutex and lives until destroyed.
    let lock = unsafe { &*(m as *const AtomicBool) };
    while lock
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
    APP_LOCKS.fetch_add(1, Ordering::Relaxed);
    CKR_OK
}

extern "C" fn unlock_mutex(m: CK_VOID_PTR) -> CK_RV {
    // SAFETY: as lock_mutex.
    let lock = unsafe { &*(m as *const AtomicBool) };
    lock.store(false, Ordering::Release);
    CKR_OK
}

#[derive(Clone, Copy, Debug)]
enum Init {
    Null,
    OsLocking,
    AppMutexes,
}

fn initialize(raw: &Raw, init: Init, dir: &std::path::Path) -> CK_RV {
    let params = std::ffi::CString::new(sql_params(dir)).unwrap();
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: params.as_ptr() as *mut _,
    };
    let f = raw.f().C_Initialize.unwrap();
    match init {
        Init::Null => {
            // No arguments at all: the database comes from the environment
            // (this file's only test sets it).
            std::env::set_var("SOFTOKEN_CONFIGDIR", format!("sql:{}", dir.display()));
            // SAFETY: NULL is a valid argument.
            unsafe { f(std::ptr::null_mut()) }
        }
        Init::OsLocking => {
            // SAFETY: valid arguments for the call's duration.
            unsafe { f(&mut args as *mut _ as *mut _) }
        }
        Init::AppMutexes => {
            args.CreateMutex = Some(create_mutex);
            args.DestroyMutex = Some(destroy_mutex);
            args.LockMutex = Some(lock_mutex);
            args.UnlockMutex = Some(unlock_mutex);
            args.flags = 0;
            // SAFETY: valid arguments and callbacks.
            unsafe { f(&mut args as *mut _ as *mut _) }
        }
    }
}

/// One thread's work: key pairs generated on the token, signatures made
/// and checked, AES keys created and some destroyed. `shared` serialises
/// the operations of a session other threads use too.
fn work(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    mine: CK_SESSION_HANDLE,
    shared: Option<&Mutex<()>>,
    t: usize,
) -> Vec<String> {
    let mut kept = Vec::new();
    for r in 0..ROUNDS {
        let label = format!("t{t}-{r}");
        let key = |class| {
            vec![
                (CKA_CLASS, ul(class)),
                (CKA_TOKEN, TRUE.to_vec()),
                (CKA_LABEL, label.as_bytes().to_vec()),
            ]
        };
        let mut public = key(CKO_PUBLIC_KEY);
        public.push((CKA_EC_PARAMS, P256_PARAMS.to_vec()));
        let mut private = key(CKO_PRIVATE_KEY);
        private.push((CKA_SIGN, TRUE.to_vec()));
        let (pubk, privk) = raw
            .generate_key_pair(s, CKM_EC_KEY_PAIR_GEN, &public, &private)
            .expect("C_GenerateKeyPair");
        let data = label.as_bytes();
        let sig = {
            let _one_operation = shared.map(|m| m.lock().unwrap());
            raw.sign(s, CKM_ECDSA_SHA256, vec![], privk, data)
                .expect("C_Sign")
        };
        // Checked on the thread's own session.
        assert_eq!(
            raw.verify(mine, CKM_ECDSA_SHA256, vec![], pubk, data, &sig),
            CKR_OK,
            "{label}"
        );
        let mut secret = key(CKO_SECRET_KEY);
        secret.extend([
            (CKA_KEY_TYPE, ul(CKK_AES)),
            (CKA_VALUE, vec![t as u8; 16]),
            (CKA_SENSITIVE, FALSE.to_vec()),
        ]);
        let h = raw.create(s, &secret).expect("C_CreateObject");
        if r % 2 == 0 {
            assert_eq!(raw.destroy(s, h), CKR_OK);
        }
        kept.push(label);
    }
    kept
}

fn run(init: Init) {
    let dir = tempfile::tempdir().unwrap();
    let raw = Arc::new(Raw::load());
    assert_eq!(initialize(&raw, init, dir.path()), CKR_OK, "{init:?}");
    let slot = raw.slots()[0];
    let shared = raw.open(slot, true).unwrap();
    let shared_lock = Arc::new(Mutex::new(()));
    let (tx, rx) = mpsc::channel();
    for t in 0..THREADS {
        let (raw, tx, shared_lock) = (raw.clone(), tx.clone(), shared_lock.clone());
        std::thread::spawn(move || {
            let mine = raw.open(slot, true).unwrap();
            let (s, lock) = if t < THREADS / 2 {
                (mine, None)
            } else {
                (shared, Some(&*shared_lock))
            };
            let kept = work(&raw, s, mine, lock, t);
            let _ = tx.send((t, kept));
        });
    }
    drop(tx);
    let mut labels = Vec::new();
    for _ in 0..THREADS {
        let (_, kept) = rx
            .recv_timeout(Duration::from_secs(240))
            .unwrap_or_else(|_| panic!("{init:?}: a thread made no progress (deadlock?)"));
        labels.extend(kept);
    }
    for (r, label) in labels.iter().enumerate() {
        let found = raw
            .find(shared, &[(CKA_LABEL, label.as_bytes().to_vec())])
            .unwrap();
        let secret_kept = label.rsplit('-').next().unwrap().parse::<usize>().unwrap() % 2 == 1;
        assert_eq!(
            found.len(),
            2 + usize::from(secret_kept),
            "{init:?} {label} ({r})"
        );
    }
    assert_eq!(raw.finalize(), CKR_OK);
}

#[test]
fn eight_threads_under_every_locking_model() {
    for init in [Init::Null, Init::OsLocking, Init::AppMutexes] {
        let before = APP_LOCKS.load(Ordering::Relaxed);
        run(init);
        let used = APP_LOCKS.load(Ordering::Relaxed) - before;
        assert_eq!(
            matches!(init, Init::AppMutexes),
            used > 0,
            "{init:?}: {used} locks"
        );
    }
}
