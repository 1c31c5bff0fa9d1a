//! A forked child never uses its parent's database handles: the module
//! reads as not initialised there, and a C_Initialize starts afresh. The
//! parent goes on undisturbed. (Alone in its test binary: forking is only
//! sound with no other test threads running.)

use pkcs11_sys::*;
use softoken_tests::raw::{ul, Raw, TRUE};
use softoken_tests::*;

#[test]
fn child_after_fork_reinitialises() {
    let dir = tempfile::tempdir().unwrap();
    let params = sql_params(dir.path());
    let raw = Raw::with_params(&params);
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    let label = b"made before fork".to_vec();
    raw.create(
        s,
        &[
            (CKA_CLASS, ul(CKO_DATA)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_LABEL, label.clone()),
        ],
    )
    .unwrap();

    // SAFETY: the child only calls the module and then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = (|| {
            let mut n = 0;
            // SAFETY: valid out pointer.
            let rv = unsafe { (raw.f().C_GetSlotList.unwrap())(0, std::ptr::null_mut(), &mut n) };
            if rv != CKR_CRYPTOKI_NOT_INITIALIZED {
                return 10;
            }
            if raw.login(s, CKU_USER, "") != CKR_CRYPTOKI_NOT_INITIALIZED {
                return 11;
            }
            if raw.initialize(Some(&params)) != CKR_OK {
                return 12;
            }
            let Ok(child_session) = raw.open(slot, true) else {
                return 13;
            };
            match raw.find(child_session, &[(CKA_LABEL, label.clone())]) {
                Ok(found) if found.len() == 1 => {}
                _ => return 14,
            }
            if raw
                .create(
                    child_session,
                    &[
                        (CKA_CLASS, ul(CKO_DATA)),
                        (CKA_TOKEN, TRUE.to_vec()),
                        (CKA_LABEL, b"child".to_vec()),
                    ],
                )
                .is_err()
            {
                return 15;
            }
            if raw.finalize() != CKR_OK {
                return 16;
            }
            0
        })();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child died: {status}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child failed at step {}",
        libc::WEXITSTATUS(status)
    );

    // The parent's session still works and sees what the child wrote.
    assert_eq!(
        raw.find(s, &[(CKA_LABEL, b"child".to_vec())])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(raw.find(s, &[(CKA_LABEL, label)]).unwrap().len(), 1);
    assert_eq!(raw.finalize(), CKR_OK);
}
