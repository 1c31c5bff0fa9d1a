//! A minimal raw PKCS#11 client over the C function list, for tests that
//! need exact return codes or NSS's vendor classes (which cryptoki refuses).

use std::ffi::CString;

use pkcs11_sys::*;

use crate::{module_copy, ModuleCopy};

/// A CK_ULONG attribute value in the native form.
pub fn ul(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub fn as_ul(v: &[u8]) -> CK_ULONG {
    CK_ULONG::from_ne_bytes(v.try_into().expect("CK_ULONG value"))
}

pub const TRUE: &[u8] = &[1];
pub const FALSE: &[u8] = &[0];

pub type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

pub struct Raw {
    list: *const CK_FUNCTION_LIST,
    _lib: libloading::Library,
    path: std::path::PathBuf,
    /// Our module's private copy, when loaded from one.
    _copy: Option<ModuleCopy>,
}

fn check(rv: CK_RV) -> Result<(), CK_RV> {
    if rv == CKR_OK {
        Ok(())
    } else {
        Err(rv)
    }
}

fn c_template(t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Vec<CK_ATTRIBUTE> {
    t.iter()
        .map(|(ty, v)| CK_ATTRIBUTE {
            type_: *ty,
            pValue: v.as_ptr() as *mut std::ffi::c_void,
            ulValueLen: v.len() as CK_ULONG,
        })
        .collect()
}

impl Raw {
    /// Loads a private copy of the module (not initialised).
    pub fn load() -> Raw {
        let copy = module_copy();
        let mut raw = Raw::load_path(&copy.path);
        raw._copy = Some(copy);
        raw
    }

    /// Loads any PKCS#11 module by path (not initialised).
    pub fn load_path(path: &std::path::Path) -> Raw {
        // SAFETY: loading a PKCS#11 module, whose initialisers are meant to
        // run in any client.
        let lib = unsafe { libloading::Library::new(path) }
            .unwrap_or_else(|e| panic!("dlopen {}: {e}", path.display()));
        let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
        // SAFETY: the symbol has the C_GetFunctionList signature.
        unsafe {
            let get: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
                lib.get(b"C_GetFunctionList").expect("C_GetFunctionList");
            assert_eq!(get(&mut list), CKR_OK);
        }
        assert!(!list.is_null());
        Raw {
            list,
            _lib: lib,
            path: path.to_path_buf(),
            _copy: None,
        }
    }

    /// Loads and initialises with a parameter string.
    pub fn with_params(params: &str) -> Raw {
        let raw = Raw::load();
        assert_eq!(raw.initialize(Some(params)), CKR_OK, "C_Initialize");
        raw
    }

    /// The function list.
    pub fn f(&self) -> &CK_FUNCTION_LIST {
        // SAFETY: the module's static function list lives as long as the library.
        unsafe { &*self.list }
    }

    /// The module's C_GetInterface, called with the caller's arguments.
    ///
    /// # Safety
    /// The pointers are what the call's caller would pass: null or valid.
    pub unsafe fn get_interface(
        &self,
        name: *mut u8,
        version: CK_VERSION_PTR,
        found: CK_INTERFACE_PTR_PTR,
        flags: CK_FLAGS,
    ) -> CK_RV {
        // SAFETY: C_GetInterface has the 3.0 header's signature.
        unsafe {
            let get: libloading::Symbol<
                unsafe extern "C" fn(
                    *mut u8,
                    CK_VERSION_PTR,
                    CK_INTERFACE_PTR_PTR,
                    CK_FLAGS,
                ) -> CK_RV,
            > = self._lib.get(b"C_GetInterface").expect("C_GetInterface");
            get(name, version, found, flags)
        }
    }

    /// The 3.0 function list, as C_GetInterface gives it by default.
    pub fn f30(&self) -> &CK_FUNCTION_LIST_3_0 {
        let mut found: CK_INTERFACE_PTR = std::ptr::null_mut();
        // SAFETY: a valid out pointer; the list the module hands out is
        // static in it, and it lives as long as `self`.
        unsafe {
            assert_eq!(
                self.get_interface(std::ptr::null_mut(), std::ptr::null_mut(), &mut found, 0),
                CKR_OK
            );
            &*((*found).pFunctionList as *const CK_FUNCTION_LIST_3_0)
        }
    }

    /// The module's shared-object path (for loading it elsewhere).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn initialize(&self, params: Option<&str>) -> CK_RV {
        let c = params.map(|p| CString::new(p).expect("params"));
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: c
                .as_ref()
                .map_or(std::ptr::null_mut(), |c| c.as_ptr() as *mut _),
        };
        // SAFETY: valid arguments for the call's duration.
        unsafe { (self.f().C_Initialize.expect("fn"))(&mut args as *mut _ as *mut _) }
    }

    pub fn finalize(&self) -> CK_RV {
        // SAFETY: no arguments.
        unsafe { (self.f().C_Finalize.expect("fn"))(std::ptr::null_mut()) }
    }

    pub fn slots(&self) -> Vec<CK_SLOT_ID> {
        let mut n: CK_ULONG = 0;
        // SAFETY: length query, then a buffer of that length.
        unsafe {
            assert_eq!(
                (self.f().C_GetSlotList.expect("fn"))(1, std::ptr::null_mut(), &mut n),
                CKR_OK
            );
            let mut ids = vec![0; n as usize];
            assert_eq!(
                (self.f().C_GetSlotList.expect("fn"))(1, ids.as_mut_ptr(), &mut n),
                CKR_OK
            );
            ids.truncate(n as usize);
            ids
        }
    }

    pub fn token_info(&self, slot: CK_SLOT_ID) -> CK_TOKEN_INFO {
        match self.try_token_info(slot) {
            Ok(info) => info,
            Err(rv) => panic!("C_GetTokenInfo: {rv:#x}"),
        }
    }

    /// C_GetTokenInfo, whatever it answers.
    pub fn try_token_info(&self, slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO, CK_RV> {
        let mut info = CK_TOKEN_INFO::default();
        // SAFETY: valid out pointer.
        let rv = unsafe { (self.f().C_GetTokenInfo.expect("fn"))(slot, &mut info) };
        if rv == CKR_OK {
            Ok(info)
        } else {
            Err(rv)
        }
    }

    pub fn slot_info(&self, slot: CK_SLOT_ID) -> CK_SLOT_INFO {
        let mut info = CK_SLOT_INFO::default();
        // SAFETY: valid out pointer.
        let rv = unsafe { (self.f().C_GetSlotInfo.expect("fn"))(slot, &mut info) };
        assert_eq!(rv, CKR_OK);
        info
    }

    /// C_GetMechanismInfo.
    pub fn mechanism_info(
        &self,
        slot: CK_SLOT_ID,
        ty: CK_MECHANISM_TYPE,
    ) -> Result<CK_MECHANISM_INFO, CK_RV> {
        let mut info = CK_MECHANISM_INFO {
            ulMinKeySize: 0,
            ulMaxKeySize: 0,
            flags: 0,
        };
        // SAFETY: a valid out pointer.
        check(unsafe { (self.f().C_GetMechanismInfo.expect("fn"))(slot, ty, &mut info) })?;
        Ok(info)
    }

    pub fn open(&self, slot: CK_SLOT_ID, rw: bool) -> Result<CK_SESSION_HANDLE, CK_RV> {
        let mut h = 0;
        let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
        // SAFETY: valid out pointer.
        check(unsafe {
            (self.f().C_OpenSession.expect("fn"))(slot, flags, std::ptr::null_mut(), None, &mut h)
        })?;
        Ok(h)
    }

    pub fn session_info(&self, s: CK_SESSION_HANDLE) -> CK_SESSION_INFO {
        let mut info = CK_SESSION_INFO::default();
        // SAFETY: a valid out pointer.
        let rv = unsafe { (self.f().C_GetSessionInfo.expect("fn"))(s, &mut info) };
        assert_eq!(rv, CKR_OK, "C_GetSessionInfo");
        info
    }

    pub fn close(&self, s: CK_SESSION_HANDLE) -> CK_RV {
        // SAFETY: plain values.
        unsafe { (self.f().C_CloseSession.expect("fn"))(s) }
    }

    pub fn login(&self, s: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> CK_RV {
        // SAFETY: the PIN buffer is valid for its length.
        unsafe {
            (self.f().C_Login.expect("fn"))(s, user, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG)
        }
    }

    pub fn logout(&self, s: CK_SESSION_HANDLE) -> CK_RV {
        // SAFETY: plain values.
        unsafe { (self.f().C_Logout.expect("fn"))(s) }
    }

    pub fn find(
        &self,
        s: CK_SESSION_HANDLE,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<Vec<CK_OBJECT_HANDLE>, CK_RV> {
        let mut tmpl = c_template(t);
        let mut out = Vec::new();
        // SAFETY: the template's buffers outlive the calls; the handle buffer is sized.
        unsafe {
            check((self.f().C_FindObjectsInit.expect("fn"))(
                s,
                tmpl.as_mut_ptr(),
                tmpl.len() as CK_ULONG,
            ))?;
            loop {
                let mut batch = [0 as CK_OBJECT_HANDLE; 7];
                let mut n = 0;
                check((self.f().C_FindObjects.expect("fn"))(
                    s,
                    batch.as_mut_ptr(),
                    7,
                    &mut n,
                ))?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&batch[..n as usize]);
            }
            check((self.f().C_FindObjectsFinal.expect("fn"))(s))?;
        }
        Ok(out)
    }

    /// One attribute by the length-query protocol.
    pub fn get(
        &self,
        s: CK_SESSION_HANDLE,
        h: CK_OBJECT_HANDLE,
        t: CK_ATTRIBUTE_TYPE,
    ) -> Result<Vec<u8>, CK_RV> {
        let mut a = CK_ATTRIBUTE {
            type_: t,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        };
        // SAFETY: a single attribute; the second call gets a buffer of the length given.
        unsafe {
            check((self.f().C_GetAttributeValue.expect("fn"))(s, h, &mut a, 1))?;
            let mut buf = vec![0u8; a.ulValueLen as usize];
            a.pValue = buf.as_mut_ptr() as *mut _;
            check((self.f().C_GetAttributeValue.expect("fn"))(s, h, &mut a, 1))?;
            buf.truncate(a.ulValueLen as usize);
            Ok(buf)
        }
    }

    pub fn create(
        &self,
        s: CK_SESSION_HANDLE,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        let mut tmpl = c_template(t);
        let mut h = 0;
        // SAFETY: the template's buffers outlive the call.
        check(unsafe {
            (self.f().C_CreateObject.expect("fn"))(
                s,
                tmpl.as_mut_ptr(),
                tmpl.len() as CK_ULONG,
                &mut h,
            )
        })?;
        Ok(h)
    }

    /// A secret key object of a type and value, with more attributes.
    pub fn create_secret(
        &self,
        s: CK_SESSION_HANDLE,
        key_type: CK_KEY_TYPE,
        value: &[u8],
        extra: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        let mut t = vec![
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(key_type)),
            (CKA_VALUE, value.to_vec()),
        ];
        t.extend_from_slice(extra);
        self.create(s, &t)
    }

    pub fn set(
        &self,
        s: CK_SESSION_HANDLE,
        h: CK_OBJECT_HANDLE,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> CK_RV {
        let mut tmpl = c_template(t);
        // SAFETY: the template's buffers outlive the call.
        unsafe {
            (self.f().C_SetAttributeValue.expect("fn"))(
                s,
                h,
                tmpl.as_mut_ptr(),
                tmpl.len() as CK_ULONG,
            )
        }
    }

    pub fn destroy(&self, s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE) -> CK_RV {
        // SAFETY: plain values.
        unsafe { (self.f().C_DestroyObject.expect("fn"))(s, h) }
    }

    pub fn init_token(&self, slot: CK_SLOT_ID, so_pin: &str, label: &str) -> CK_RV {
        let mut field = [b' '; 32];
        field[..label.len()].copy_from_slice(label.as_bytes());
        // SAFETY: the PIN and the 32-byte label are valid.
        unsafe {
            (self.f().C_InitToken.expect("fn"))(
                slot,
                so_pin.as_ptr() as *mut u8,
                so_pin.len() as CK_ULONG,
                field.as_mut_ptr(),
            )
        }
    }

    pub fn init_pin(&self, s: CK_SESSION_HANDLE, pin: &str) -> CK_RV {
        // SAFETY: the PIN buffer is valid.
        unsafe {
            (self.f().C_InitPIN.expect("fn"))(s, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG)
        }
    }

    pub fn set_pin(&self, s: CK_SESSION_HANDLE, old: &str, new: &str) -> CK_RV {
        // SAFETY: the PIN buffers are valid.
        unsafe {
            (self.f().C_SetPIN.expect("fn"))(
                s,
                old.as_ptr() as *mut u8,
                old.len() as CK_ULONG,
                new.as_ptr() as *mut u8,
                new.len() as CK_ULONG,
            )
        }
    }
}

/// A mechanism parameter structure as the bytes a CK_MECHANISM carries
/// (the buffers its pointers name must outlive the call that uses it).
pub fn param_bytes<T: Copy>(p: &T) -> Vec<u8> {
    // SAFETY: a plain C struct, fully initialised, viewed as its bytes.
    unsafe { std::slice::from_raw_parts(p as *const T as *const u8, std::mem::size_of::<T>()) }
        .to_vec()
}

/// A CK_MECHANISM over a parameter buffer that outlives it.
pub fn mechanism(ty: CK_MECHANISM_TYPE, param: &mut [u8]) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: ty,
        pParameter: if param.is_empty() {
            std::ptr::null_mut()
        } else {
            param.as_mut_ptr() as *mut _
        },
        ulParameterLen: param.len() as CK_ULONG,
    }
}

impl Raw {
    /// C_SignInit and a single-part C_Sign, with a length query first.
    pub fn sign(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
    ) -> Result<Vec<u8>, CK_RV> {
        check(self.sign_init(s, ty, param, key))?;
        self.sign_data(s, data)
    }

    /// C_SignInit alone.
    pub fn sign_init(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        let mut m = mechanism(ty, &mut param);
        // SAFETY: a valid mechanism.
        unsafe { (self.f().C_SignInit.expect("fn"))(s, &mut m, key) }
    }

    /// A single-part C_Sign of the operation under way, with a length
    /// query first.
    pub fn sign_data(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let f = self.f();
        // SAFETY: valid buffers and lengths.
        unsafe {
            let mut len = 0;
            let data_ptr = data.as_ptr() as *mut u8;
            check((f.C_Sign.expect("fn"))(
                s,
                data_ptr,
                data.len() as CK_ULONG,
                std::ptr::null_mut(),
                &mut len,
            ))?;
            let mut out = vec![0u8; len as usize];
            check((f.C_Sign.expect("fn"))(
                s,
                data_ptr,
                data.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len,
            ))?;
            out.truncate(len as usize);
            Ok(out)
        }
    }

    /// C_SignMessage with no per-message parameter, with a length query
    /// first (after C_MessageSignInit).
    pub fn sign_message(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let sign = self.f30().C_SignMessage.expect("fn");
        let d = (data.as_ptr() as *mut u8, data.len() as CK_ULONG);
        let mut len = 0;
        // SAFETY: valid buffers and lengths.
        unsafe {
            check(sign(
                s,
                std::ptr::null_mut(),
                0,
                d.0,
                d.1,
                std::ptr::null_mut(),
                &mut len,
            ))?;
            let mut out = vec![0u8; len as usize];
            check(sign(
                s,
                std::ptr::null_mut(),
                0,
                d.0,
                d.1,
                out.as_mut_ptr(),
                &mut len,
            ))?;
            out.truncate(len as usize);
            Ok(out)
        }
    }

    /// C_VerifyInit and a single-part C_Verify.
    pub fn verify(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        sig: &[u8],
    ) -> CK_RV {
        let f = self.f();
        let mut m = mechanism(ty, &mut param);
        // SAFETY: valid mechanism, buffers and lengths.
        unsafe {
            let rv = (f.C_VerifyInit.expect("fn"))(s, &mut m, key);
            if rv != CKR_OK {
                return rv;
            }
            (f.C_Verify.expect("fn"))(
                s,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                sig.as_ptr() as *mut u8,
                sig.len() as CK_ULONG,
            )
        }
    }

    pub fn generate_key(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        self.generate_key_with(s, ty, Vec::new(), t)
    }

    /// C_GenerateKey with a mechanism parameter.
    pub fn generate_key_with(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        let mut tmpl = c_template(t);
        let mut m = mechanism(ty, &mut param);
        let mut h = 0;
        // SAFETY: valid mechanism, template and out pointer.
        check(unsafe {
            (self.f().C_GenerateKey.expect("fn"))(
                s,
                &mut m,
                tmpl.as_mut_ptr(),
                tmpl.len() as CK_ULONG,
                &mut h,
            )
        })?;
        Ok(h)
    }

    /// C_GenerateKeyPair: (public, private) handles.
    pub fn generate_key_pair(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        public: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        private: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), CK_RV> {
        let mut pubt = c_template(public);
        let mut privt = c_template(private);
        let mut m = mechanism(ty, &mut []);
        let (mut hp, mut hs) = (0, 0);
        // SAFETY: valid mechanism, templates and out pointers.
        check(unsafe {
            (self.f().C_GenerateKeyPair.expect("fn"))(
                s,
                &mut m,
                pubt.as_mut_ptr(),
                pubt.len() as CK_ULONG,
                privt.as_mut_ptr(),
                privt.len() as CK_ULONG,
                &mut hp,
                &mut hs,
            )
        })?;
        Ok((hp, hs))
    }
}

/// Which way a cipher runs.
#[derive(Clone, Copy)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

impl Raw {
    /// Init and a single-part C_Encrypt / C_Decrypt with a length query.
    pub fn crypt(
        &self,
        s: CK_SESSION_HANDLE,
        dir: Direction,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
        input: &[u8],
    ) -> Result<Vec<u8>, CK_RV> {
        let f = self.f();
        let (init, single) = match dir {
            Direction::Encrypt => (f.C_EncryptInit.expect("fn"), f.C_Encrypt.expect("fn")),
            Direction::Decrypt => (f.C_DecryptInit.expect("fn"), f.C_Decrypt.expect("fn")),
        };
        let mut m = mechanism(ty, &mut param);
        let inp = input.as_ptr() as *mut u8;
        let n = input.len() as CK_ULONG;
        // SAFETY: valid mechanism, buffers and lengths.
        unsafe {
            check(init(s, &mut m, key))?;
            let mut len = 0;
            check(single(s, inp, n, std::ptr::null_mut(), &mut len))?;
            let mut out = vec![0u8; len as usize];
            check(single(s, inp, n, out.as_mut_ptr(), &mut len))?;
            out.truncate(len as usize);
            Ok(out)
        }
    }

    /// Init and a single-part C_Encrypt / C_Decrypt into a buffer of `room`
    /// bytes, without a length query (a module whose query answers less
    /// than it then needs, as NSS's ChaCha20-Poly1305 does).
    #[allow(clippy::too_many_arguments)]
    pub fn crypt_into(
        &self,
        s: CK_SESSION_HANDLE,
        dir: Direction,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
        input: &[u8],
        room: usize,
    ) -> Result<Vec<u8>, CK_RV> {
        let f = self.f();
        let (init, single) = match dir {
            Direction::Encrypt => (f.C_EncryptInit.expect("fn"), f.C_Encrypt.expect("fn")),
            Direction::Decrypt => (f.C_DecryptInit.expect("fn"), f.C_Decrypt.expect("fn")),
        };
        let mut m = mechanism(ty, &mut param);
        let mut out = vec![0u8; room];
        let mut len = room as CK_ULONG;
        // SAFETY: valid mechanism, buffers and lengths.
        unsafe {
            check(init(s, &mut m, key))?;
            check(single(
                s,
                input.as_ptr() as *mut u8,
                input.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len,
            ))?;
        }
        out.truncate(len as usize);
        Ok(out)
    }

    /// Init, C_…Update for each part, then C_…Final, each output sized by
    /// a length query first.
    pub fn crypt_parts(
        &self,
        s: CK_SESSION_HANDLE,
        dir: Direction,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, CK_RV> {
        let f = self.f();
        let (init, update, fin) = match dir {
            Direction::Encrypt => (
                f.C_EncryptInit.expect("fn"),
                f.C_EncryptUpdate.expect("fn"),
                f.C_EncryptFinal.expect("fn"),
            ),
            Direction::Decrypt => (
                f.C_DecryptInit.expect("fn"),
                f.C_DecryptUpdate.expect("fn"),
                f.C_DecryptFinal.expect("fn"),
            ),
        };
        let mut m = mechanism(ty, &mut param);
        let mut out = Vec::new();
        // SAFETY: valid mechanism, buffers and lengths.
        unsafe {
            check(init(s, &mut m, key))?;
            for part in parts {
                let (p, n) = (part.as_ptr() as *mut u8, part.len() as CK_ULONG);
                let mut len = 0;
                check(update(s, p, n, std::ptr::null_mut(), &mut len))?;
                let mut buf = vec![0u8; len as usize];
                check(update(s, p, n, buf.as_mut_ptr(), &mut len))?;
                out.extend_from_slice(&buf[..len as usize]);
            }
            let mut len = 0;
            check(fin(s, std::ptr::null_mut(), &mut len))?;
            let mut buf = vec![0u8; len as usize];
            check(fin(s, buf.as_mut_ptr(), &mut len))?;
            out.extend_from_slice(&buf[..len as usize]);
        }
        Ok(out)
    }
}

/// CK_HKDF_PARAMS (SHA-256) as bytes; the buffers must outlive its use.
pub fn hkdf_param(
    extract: bool,
    expand: bool,
    salt_type: CK_ULONG,
    salt: &[u8],
    salt_key: CK_OBJECT_HANDLE,
    info: &[u8],
) -> Vec<u8> {
    let p = CK_HKDF_PARAMS {
        bExtract: extract as u8,
        bExpand: expand as u8,
        prfHashMechanism: CKM_SHA256,
        ulSaltType: salt_type,
        pSalt: salt.as_ptr() as *mut u8,
        ulSaltLen: salt.len() as CK_ULONG,
        hSaltKey: salt_key,
        pInfo: info.as_ptr() as *mut u8,
        ulInfoLen: info.len() as CK_ULONG,
    };
    param_bytes(&p)
}

/// CK_GCM_PARAMS as parameter bytes; `iv` and `aad` must outlive its use.
pub fn gcm_param(iv: &[u8], aad: &[u8], tag_bits: CK_ULONG) -> Vec<u8> {
    let params = CK_GCM_PARAMS {
        pIv: iv.as_ptr() as *mut u8,
        ulIvLen: iv.len() as CK_ULONG,
        ulIvBits: (iv.len() * 8) as CK_ULONG,
        pAAD: aad.as_ptr() as *mut u8,
        ulAADLen: aad.len() as CK_ULONG,
        ulTagBits: tag_bits,
    };
    param_bytes(&params)
}

/// CK_RSA_PKCS_OAEP_PARAMS as parameter bytes; `label` must outlive its use.
pub fn oaep_param(hash: CK_MECHANISM_TYPE, mgf: CK_ULONG, label: &[u8]) -> Vec<u8> {
    let params = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: hash,
        mgf,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: label.as_ptr() as *mut std::ffi::c_void,
        ulSourceDataLen: label.len() as CK_ULONG,
    };
    param_bytes(&params)
}

/// CK_ECDH1_DERIVE_PARAMS as parameter bytes; the buffers must outlive its use.
pub fn ecdh_param(kdf: CK_ULONG, shared: &[u8], public: &[u8]) -> Vec<u8> {
    let params = CK_ECDH1_DERIVE_PARAMS {
        kdf,
        ulSharedDataLen: shared.len() as CK_ULONG,
        // No shared data is a null pointer (NSS and SoftHSMv2 insist).
        pSharedData: if shared.is_empty() {
            std::ptr::null_mut()
        } else {
            shared.as_ptr() as *mut u8
        },
        ulPublicDataLen: public.len() as CK_ULONG,
        pPublicData: public.as_ptr() as *mut u8,
    };
    param_bytes(&params)
}

impl Raw {
    /// C_DeriveKey.
    pub fn derive(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        base: CK_OBJECT_HANDLE,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        let mut tmpl = c_template(t);
        let mut m = mechanism(ty, &mut param);
        let mut h = 0;
        // SAFETY: valid mechanism, template and out pointer.
        check(unsafe {
            (self.f().C_DeriveKey.expect("fn"))(
                s,
                &mut m,
                base,
                tmpl.as_mut_ptr(),
                tmpl.len() as CK_ULONG,
                &mut h,
            )
        })?;
        Ok(h)
    }
}

impl Raw {
    /// C_WrapKey, with a length query first.
    pub fn wrap_key(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
    ) -> Result<Vec<u8>, CK_RV> {
        let f = self.f().C_WrapKey.expect("fn");
        let mut m = mechanism(ty, &mut param);
        // SAFETY: valid mechanism, buffer and lengths.
        unsafe {
            let mut len = 0;
            check(f(s, &mut m, wrapping, key, std::ptr::null_mut(), &mut len))?;
            let mut out = vec![0u8; len as usize];
            check(f(s, &mut m, wrapping, key, out.as_mut_ptr(), &mut len))?;
            out.truncate(len as usize);
            Ok(out)
        }
    }

    /// C_UnwrapKey.
    pub fn unwrap_key(
        &self,
        s: CK_SESSION_HANDLE,
        ty: CK_MECHANISM_TYPE,
        mut param: Vec<u8>,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        let mut tmpl = c_template(t);
        let mut m = mechanism(ty, &mut param);
        let mut h = 0;
        // SAFETY: valid mechanism, buffers, template and out pointer.
        check(unsafe {
            (self.f().C_UnwrapKey.expect("fn"))(
                s,
                &mut m,
                unwrapping,
                wrapped.as_ptr() as *mut u8,
                wrapped.len() as CK_ULONG,
                tmpl.as_mut_ptr(),
                tmpl.len() as CK_ULONG,
                &mut h,
            )
        })?;
        Ok(h)
    }
}

/// CK_AES_CTR_PARAMS as parameter bytes.
pub fn ctr_param(counter_bits: CK_ULONG, counter: &[u8; 16]) -> Vec<u8> {
    [&counter_bits.to_ne_bytes()[..], counter].concat()
}

// SAFETY: the module is thread-safe (OS locking) and the list is immutable.
unsafe impl Send for Raw {}
// SAFETY: as above.
unsafe impl Sync for Raw {}
