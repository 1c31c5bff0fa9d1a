//! Checked conversions of the raw pointers and lengths a caller passes,
//! and the panic boundary. (The length-query protocol is `ptr::OutBuf`.)

use std::panic::{catch_unwind, AssertUnwindSafe};

use pkcs11_sys::*;

use crate::mechanism::param::{param_word, DataParam, HkdfSalt, KdfParams, TlsMasterSeed};
use crate::module::{self, Module};
use crate::nss::{
    CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE, CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE_DH,
};
use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};

/// Runs the safe body of an entry point: a panic becomes
/// CKR_GENERAL_ERROR (never an abort that would take the client down), an
/// error becomes its CK_RV.
pub fn boundary(f: impl FnOnce() -> Result<()>) -> CK_RV {
    let rv = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(rv)) => rv.code(),
        Err(_) => CKR_GENERAL_ERROR,
    };
    // What a private-key operation left on the stack goes before the
    // caller has it back.
    crate::engine::secret::wipe_stack_if_marked();
    rv
}

/// Like `boundary`, for calls that need the initialised module; holds the
/// application's mutex around the call when it supplied one.
pub fn with_module(f: impl FnOnce(&Module) -> Result<()>) -> CK_RV {
    boundary(|| {
        module::with(|m| match m.call_lock() {
            Some(lock) => {
                lock.lock()?;
                let r = catch_unwind(AssertUnwindSafe(|| f(m)));
                lock.unlock();
                r.unwrap_or(Err(Rv::GeneralError))
            }
            None => f(m),
        })
    })
}

/// The lowest address a caller's pointer can hold. Linux maps nothing
/// below `vm.mmap_min_addr` (64 KiB by default), so a smaller non-null
/// value is a length or a flag where a pointer belongs, never memory:
/// every pointer a caller passes is checked against it (and for its
/// alignment) before it is read, instead of faulting in the caller's
/// process.
pub const LOWEST_MAPPED_ADDRESS: usize = 0x10000;

/// Whether a caller's pointer can be dereferenced as a `T`: null is
/// None; one below the mapped range or misaligned is CKR_ARGUMENTS_BAD.
fn checked<T>(p: *const T) -> Result<Option<*const T>> {
    if p.is_null() {
        return Ok(None);
    }
    if (p as usize) < LOWEST_MAPPED_ADDRESS || !p.is_aligned() {
        return Err(Rv::ArgumentsBad);
    }
    Ok(Some(p))
}

/// A caller's optional input: None for null.
///
/// # Safety
/// `p` is null or valid for reads of a `T`.
pub unsafe fn input<'a, T>(p: *const T) -> Result<Option<&'a T>> {
    // SAFETY: checked above; the caller of the C API promises the rest.
    Ok(checked(p)?.map(|p| unsafe { &*p }))
}

/// A caller's output location.
///
/// # Safety
/// `p` is null or valid for writes of a `T`.
pub unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T> {
    let p = checked(p)?.ok_or(Rv::ArgumentsBad)? as *mut T;
    // SAFETY: checked above; the caller of the C API promises the rest.
    Ok(unsafe { &mut *p })
}

/// A caller's NUL-terminated string: None for null.
///
/// # Safety
/// `p` is null or a NUL-terminated string.
pub unsafe fn c_str<'a>(p: *const u8) -> Result<Option<&'a std::ffi::CStr>> {
    // SAFETY: checked above; the caller promises the terminator.
    Ok(checked(p)?.map(|p| unsafe { std::ffi::CStr::from_ptr(p as *const std::ffi::c_char) }))
}

/// A caller's input bytes; a zero length needs no pointer.
///
/// # Safety
/// `p` is null or valid for reads of `len` bytes.
pub unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    // SAFETY: this function's promise is `items`'.
    unsafe { items(p, len) }
}

/// A caller's array of `count` items.
///
/// # Safety
/// `p` is null or valid for reads of `count` items.
pub unsafe fn items<'a, T>(p: *const T, count: CK_ULONG) -> Result<&'a [T]> {
    if count == 0 {
        return Ok(&[]);
    }
    if count > (isize::MAX as usize / std::mem::size_of::<T>().max(1)) as CK_ULONG {
        return Err(Rv::ArgumentsBad);
    }
    let p = checked(p)?.ok_or(Rv::ArgumentsBad)?;
    // SAFETY: checked above, and the caller promises `count` readable items.
    Ok(unsafe { std::slice::from_raw_parts(p, count as usize) })
}

/// A caller's writable array of `count` items.
///
/// # Safety
/// `p` is valid for writes of `count` items.
pub unsafe fn items_mut<'a, T>(p: *mut T, count: usize) -> Result<&'a mut [T]> {
    if count == 0 {
        return Ok(&mut []);
    }
    let p = checked(p)?.ok_or(Rv::ArgumentsBad)? as *mut T;
    // SAFETY: checked above, and the caller promises room for `count` items.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, count) })
}

/// A mechanism and a copy of its parameter (and of what a parameter's
/// pointers point at).
///
/// # Safety
/// `p` is null or a valid CK_MECHANISM whose parameter is valid.
pub unsafe fn mechanism(p: CK_MECHANISM_PTR) -> Result<crate::mechanism::param::MechanismArg> {
    // SAFETY: the caller's pointer, checked.
    let m = unsafe { input(p)? }.ok_or(Rv::ArgumentsBad)?;
    // SAFETY: the parameter's pointer and length come from the caller.
    let param = unsafe { bytes(m.pParameter as *const u8, m.ulParameterLen) }
        .map_err(|_| Rv::MechanismParamInvalid)?;
    let aead = match m.mechanism {
        // SAFETY: a GCM parameter is a CK_GCM_PARAMS of the length given.
        CKM_AES_GCM => Some(unsafe { gcm_params(param)? }),
        // SAFETY: a CCM parameter is a CK_CCM_PARAMS of the length given.
        CKM_AES_CCM => Some(unsafe { ccm_params(param)? }),
        // SAFETY: a CK_SALSA20_CHACHA20_POLY1305_PARAMS of the length given.
        CKM_CHACHA20_POLY1305 => Some(unsafe { chacha20_poly1305_params(param)? }),
        _ => None,
    };
    let pointed = match m.mechanism {
        // SAFETY: an OAEP parameter is a CK_RSA_PKCS_OAEP_PARAMS.
        CKM_RSA_PKCS_OAEP => vec![unsafe { oaep_label(param)? }],
        // SAFETY: an ECDH parameter is a CK_ECDH1_DERIVE_PARAMS.
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => unsafe { ecdh_data(param)? },
        CKM_CONCATENATE_BASE_AND_DATA
        | CKM_CONCATENATE_DATA_AND_BASE
        | CKM_XOR_BASE_AND_DATA
        | CKM_AES_ECB_ENCRYPT_DATA
        | CKM_DES_ECB_ENCRYPT_DATA
        | CKM_DES3_ECB_ENCRYPT_DATA => {
            // SAFETY: each is a CK_KEY_DERIVATION_STRING_DATA.
            vec![unsafe { string_data(param, 0)? }]
        }
        // SAFETY: a CK_AES_CBC_ENCRYPT_DATA_PARAMS: the IV, then the data.
        CKM_AES_CBC_ENCRYPT_DATA => vec![unsafe { string_data(param, 16)? }],
        // SAFETY: a ChaCha20 parameter is a CK_CHACHA20_PARAMS.
        CKM_CHACHA20 => unsafe { chacha20_params(param)? },
        CKM_DES_CBC_ENCRYPT_DATA | CKM_DES3_CBC_ENCRYPT_DATA => {
            // SAFETY: a CK_DES_CBC_ENCRYPT_DATA_PARAMS: the 8-byte IV, then
            // the data.
            vec![unsafe { string_data(param, 8)? }]
        }
        _ => Vec::new(),
    };
    let kdf = match m.mechanism {
        // SAFETY: each is the parameter structure its mechanism defines.
        CKM_HKDF_DERIVE | CKM_HKDF_DATA => Some(unsafe { hkdf_params(param)? }),
        // SAFETY: as above.
        CKM_PKCS5_PBKD2 => Some(unsafe { pbkdf2_params(param)? }),
        // SAFETY: as above.
        CKM_SP800_108_COUNTER_KDF => Some(unsafe { sp800_108_params(param)? }),
        CKM_TLS12_MASTER_KEY_DERIVE | CKM_TLS12_MASTER_KEY_DERIVE_DH => {
            // SAFETY: as above.
            Some(unsafe { tls12_master_params(param)? })
        }
        CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE | CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE_DH => {
            // SAFETY: as above.
            Some(unsafe { tls_extended_master_params(param)? })
        }
        // SAFETY: as above.
        CKM_TLS12_KDF => Some(unsafe { tls12_kdf_params(param)? }),
        CKM_TLS12_KEY_AND_MAC_DERIVE | CKM_TLS12_KEY_SAFE_DERIVE => {
            // SAFETY: as above.
            Some(unsafe { tls12_key_mat_params(param, m.mechanism == CKM_TLS12_KEY_SAFE_DERIVE)? })
        }
        _ => None,
    };
    Ok(crate::mechanism::param::MechanismArg {
        ty: m.mechanism,
        param: param.to_vec(),
        aead,
        pointed,
        kdf,
    })
}

/// The data of a derivation parameter whose structure ends in a pointer
/// and a length, at byte `offset` (CK_KEY_DERIVATION_STRING_DATA: 0;
/// CK_AES_CBC_ENCRYPT_DATA_PARAMS: after its 16-byte IV).
///
/// # Safety
/// `param` holds the caller's structure, whose pointer is valid.
unsafe fn string_data(param: &[u8], offset: usize) -> Result<Vec<u8>> {
    const UL: usize = std::mem::size_of::<CK_ULONG>();
    let fields = param.get(offset..).ok_or(Rv::MechanismParamInvalid)?;
    if fields.len() != 2 * UL {
        return Err(Rv::MechanismParamInvalid);
    }
    let w = |i| param_word(fields, i);
    // SAFETY: the caller's data, of the length it gives.
    Ok(unsafe { bytes(w(0)? as *const u8, w(1)?) }
        .map_err(|_| Rv::MechanismParamInvalid)?
        .to_vec())
}

/// CK_HKDF_PARAMS: bExtract and bExpand (bytes), then prfHashMechanism,
/// ulSaltType, pSalt, ulSaltLen, hSaltKey, pInfo, ulInfoLen.
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn hkdf_params(param: &[u8]) -> Result<KdfParams> {
    if param.len() != std::mem::size_of::<CK_HKDF_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let w = |i| param_word(param, i);
    let extract = param[0] != 0;
    // The salt matters to extraction only; expansion alone ignores its type
    // (TLS 1.3 stacks send 0 there).
    let salt = match w(2)? {
        _ if !extract => HkdfSalt::Null,
        CKF_HKDF_SALT_NULL => HkdfSalt::Null,
        // SAFETY: the caller's salt buffer, of the length it gives.
        CKF_HKDF_SALT_DATA => HkdfSalt::Data(unsafe { bytes(w(3)? as *const u8, w(4)?)? }.to_vec()),
        CKF_HKDF_SALT_KEY => HkdfSalt::Key(w(5)?),
        _ => return Err(Rv::MechanismParamInvalid),
    };
    Ok(KdfParams::Hkdf {
        extract,
        expand: param[1] != 0,
        prf: w(1)?,
        salt,
        // SAFETY: the caller's info buffer, of the length it gives.
        info: unsafe { bytes(w(6)? as *const u8, w(7)?)? }.to_vec(),
    })
}

/// The longest PBKDF2 password taken, in bytes: the largest value that
/// can never be a pointer.
const MAX_PBKDF2_PASSWORD_LEN: u64 = LOWEST_MAPPED_ADDRESS as u64 - 1;

/// CK_PKCS5_PBKD2_PARAMS2 (saltSource, pSaltSourceData, ulSaltSourceDataLen,
/// iterations, prf, pPrfData, ulPrfDataLen, pPassword, ulPasswordLen), or
/// the older CK_PKCS5_PBKD2_PARAMS of the same size, whose last word points
/// at the length. NSS up to 3.110 (Debian's 3.87 among them) sends only the
/// older one; the 2.40 errata, 3.0 and later NSS send PARAMS2.
///
/// No rule on the word's value tells the two apart for certain, so the word
/// is never dereferenced as a guess: a value below the lowest mapped address
/// is a length (no pointer is that small), and a larger one is read as the
/// address of the length through the kernel (`read_word_at`), where an
/// address that is not readable memory fails instead of faulting. A PARAMS2
/// password of 64 KiB or more is refused, since its length could be an
/// address.
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn pbkdf2_params(param: &[u8]) -> Result<KdfParams> {
    if param.len() != std::mem::size_of::<CK_PKCS5_PBKD2_PARAMS2>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let w = |i| param_word(param, i);
    if w(0)? != CKZ_SALT_SPECIFIED {
        return Err(Rv::MechanismParamInvalid);
    }
    let last = w(8)?;
    let password_len = if last <= MAX_PBKDF2_PASSWORD_LEN {
        last
    } else {
        read_word_at(last)?
    };
    if password_len > MAX_PBKDF2_PASSWORD_LEN {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: the caller's salt and password buffers, of the lengths given.
    let (salt, password) = unsafe {
        (
            bytes(w(1)? as *const u8, w(2)?)?,
            bytes(w(7)? as *const u8, password_len)?,
        )
    };
    Ok(KdfParams::Pbkdf2 {
        salt: salt.to_vec(),
        iterations: w(3)?,
        prf: w(4)?,
        password: zeroize::Zeroizing::new(password.to_vec()),
    })
}

/// The CK_ULONG at `address`, a caller's word that may or may not be a
/// pointer. The kernel copies it through a pipe: an address that is not
/// readable memory makes write(2) fail with EFAULT, so it is
/// CKR_MECHANISM_PARAM_INVALID, never a fault in the caller's process. The
/// raw system call bypasses sanitizer interceptors, which would check the
/// address themselves.
fn read_word_at(address: u64) -> Result<u64> {
    const UL: usize = std::mem::size_of::<CK_ULONG>();
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Rv::FunctionFailed);
    }
    let mut word = [0u8; UL];
    // SAFETY: write(2) reads UL bytes at `address` in the kernel, which
    // checks the address; a fresh pipe takes UL bytes without blocking.
    let wrote = unsafe { libc::syscall(libc::SYS_write, fds[1], address as usize, UL) };
    let got = if wrote == UL as i64 {
        // SAFETY: reads the UL bytes just written into a buffer of UL bytes.
        unsafe { libc::read(fds[0], word.as_mut_ptr() as *mut libc::c_void, UL) }
    } else {
        -1
    };
    // SAFETY: closes the two descriptors made above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    if got != UL as isize {
        return Err(Rv::MechanismParamInvalid);
    }
    Ok(u64::from_ne_bytes(word))
}

/// CK_SP800_108_KDF_PARAMS: prfType, ulNumberOfDataParams, pDataParams,
/// ulAdditionalDerivedKeys (must be 0), pAdditionalDerivedKeys.
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn sp800_108_params(param: &[u8]) -> Result<KdfParams> {
    if param.len() != std::mem::size_of::<CK_SP800_108_KDF_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let w = |i| param_word(param, i);
    if w(3)? != 0 {
        // Additional derived keys are not offered.
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: the caller's array of data parameters, of the count it gives.
    let list = unsafe { items(w(2)? as *const CK_PRF_DATA_PARAM, w(1)?)? };
    let mut data = Vec::with_capacity(list.len());
    for d in list {
        // SAFETY: each data parameter's value, of the length it gives.
        let value = unsafe { bytes(d.pValue as *const u8, d.ulValueLen)? };
        let word = |i| param_word(value, i);
        let width =
            |i| word(i).and_then(|v| u32::try_from(v).map_err(|_| Rv::MechanismParamInvalid));
        data.push(match d.type_ {
            CK_SP800_108_ITERATION_VARIABLE
                if value.len() == std::mem::size_of::<CK_SP800_108_COUNTER_FORMAT>() =>
            {
                DataParam::Counter {
                    little_endian: value[0] != 0,
                    width: width(1)?,
                }
            }
            CK_SP800_108_DKM_LENGTH
                if value.len() == std::mem::size_of::<CK_SP800_108_DKM_LENGTH_FORMAT>() =>
            {
                DataParam::DkmLength {
                    of_segments: word(0)? == CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS,
                    little_endian: value[8] != 0,
                    width: width(2)?,
                }
            }
            CK_SP800_108_BYTE_ARRAY => DataParam::Bytes(value.to_vec()),
            _ => return Err(Rv::MechanismParamInvalid),
        });
    }
    Ok(KdfParams::Sp800_108 { prf: w(0)?, data })
}

/// The client's and the server's random of a CK_SSL3_RANDOM_DATA
/// (pClientRandom, ulClientRandomLen, pServerRandom, ulServerRandomLen).
///
/// # Safety
/// The structure's pointers are valid for the lengths it gives.
unsafe fn tls_randoms(r: &CK_SSL3_RANDOM_DATA) -> Result<(Vec<u8>, Vec<u8>)> {
    // SAFETY: the caller's buffers, of the lengths it gives.
    unsafe {
        Ok((
            bytes(r.pClientRandom, r.ulClientRandomLen)?.to_vec(),
            bytes(r.pServerRandom, r.ulServerRandomLen)?.to_vec(),
        ))
    }
}

/// A parameter structure of type `T` (plain data: words and pointers),
/// copied out of the caller's bytes if it has exactly `T`'s size.
fn param_struct<T: Copy>(param: &[u8]) -> Result<T> {
    if param.len() != std::mem::size_of::<T>() {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: `param` has size_of::<T>() bytes, read unaligned; T is one of
    // pkcs11-sys's C structures, for which any bytes are a value.
    Ok(unsafe { std::ptr::read_unaligned(param.as_ptr() as *const T) })
}

/// CK_TLS12_MASTER_KEY_DERIVE_PARAMS (RandomInfo, pVersion,
/// prfHashMechanism).
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn tls12_master_params(param: &[u8]) -> Result<KdfParams> {
    let p: CK_TLS12_MASTER_KEY_DERIVE_PARAMS = param_struct(param)?;
    // SAFETY: this function's promise.
    let (client_random, server_random) = unsafe { tls_randoms(&p.RandomInfo)? };
    Ok(KdfParams::TlsMaster {
        prf: p.prfHashMechanism,
        seed: TlsMasterSeed::Randoms {
            client_random,
            server_random,
        },
        version_out: p.pVersion as CK_ULONG,
    })
}

/// CK_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE_PARAMS (prfHashMechanism,
/// pSessionHash, ulSessionHashLen, pVersion).
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn tls_extended_master_params(param: &[u8]) -> Result<KdfParams> {
    if param.len() != 4 * std::mem::size_of::<CK_ULONG>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let w = |i| param_word(param, i);
    // SAFETY: the caller's session hash, of the length it gives.
    let session_hash = unsafe { bytes(w(1)? as *const u8, w(2)?)? }.to_vec();
    Ok(KdfParams::TlsMaster {
        prf: w(0)?,
        seed: TlsMasterSeed::SessionHash(session_hash),
        version_out: w(3)?,
    })
}

/// CK_TLS12_KEY_MAT_PARAMS (ulMacSizeInBits, ulKeySizeInBits,
/// ulIVSizeInBits, bIsExport, RandomInfo, pReturnedKeyMaterial,
/// prfHashMechanism); `safe` (KEY_SAFE_DERIVE) ignores the IV size, as the
/// specification says. Sizes that are not whole bytes are refused.
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn tls12_key_mat_params(param: &[u8], safe: bool) -> Result<KdfParams> {
    let p: CK_TLS12_KEY_MAT_PARAMS = param_struct(param)?;
    // SAFETY: this function's promise.
    let (client_random, server_random) = unsafe { tls_randoms(&p.RandomInfo)? };
    let bytes_of_bits = |bits: CK_ULONG| {
        if !bits.is_multiple_of(8) || bits > 8 * 1024 {
            return Err(Rv::MechanismParamInvalid);
        }
        Ok(bits as usize / 8)
    };
    Ok(KdfParams::TlsKeyMaterial {
        prf: p.prfHashMechanism,
        mac_len: bytes_of_bits(p.ulMacSizeInBits)?,
        key_len: bytes_of_bits(p.ulKeySizeInBits)?,
        iv_len: if safe {
            0
        } else {
            bytes_of_bits(p.ulIVSizeInBits)?
        },
        export: p.bIsExport != 0,
        client_random,
        server_random,
        out: p.pReturnedKeyMaterial as CK_ULONG,
    })
}

/// CK_TLS_KDF_PARAMS (prfMechanism, pLabel, ulLabelLength, RandomInfo,
/// pContextData, ulContextDataLength); a NULL context is no context.
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn tls12_kdf_params(param: &[u8]) -> Result<KdfParams> {
    let p: CK_TLS_KDF_PARAMS = param_struct(param)?;
    // SAFETY: this function's promise: the caller's buffers, of the
    // lengths it gives.
    unsafe {
        let (client_random, server_random) = tls_randoms(&p.RandomInfo)?;
        let context = if p.pContextData.is_null() {
            if p.ulContextDataLength != 0 {
                return Err(Rv::MechanismParamInvalid);
            }
            None
        } else {
            Some(bytes(p.pContextData, p.ulContextDataLength)?.to_vec())
        };
        Ok(KdfParams::TlsKdf {
            prf: p.prfMechanism,
            label: bytes(p.pLabel, p.ulLabelLength)?.to_vec(),
            client_random,
            server_random,
            context,
        })
    }
}

/// The shared data and the public data of CK_ECDH1_DERIVE_PARAMS (kdf,
/// ulSharedDataLen, pSharedData, ulPublicDataLen, pPublicData).
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn ecdh_data(param: &[u8]) -> Result<Vec<Vec<u8>>> {
    if param.len() != std::mem::size_of::<CK_ECDH1_DERIVE_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let w = |i| param_word(param, i);
    // SAFETY: the caller's buffers, of the lengths it gives.
    let (shared, public) = unsafe {
        (
            bytes(w(2)? as *const u8, w(1)?)?,
            bytes(w(4)? as *const u8, w(3)?)?,
        )
    };
    Ok(vec![shared.to_vec(), public.to_vec()])
}

/// The label of CK_RSA_PKCS_OAEP_PARAMS (hashAlg, mgf, source,
/// pSourceData, ulSourceDataLen).
///
/// # Safety
/// `param` holds the caller's structure, whose data pointer is valid.
unsafe fn oaep_label(param: &[u8]) -> Result<Vec<u8>> {
    if param.len() != std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let word = |i| param_word(param, i);
    // SAFETY: the caller's label buffer, of the length it gives.
    Ok(unsafe { bytes(word(3)? as *const u8, word(4)?)? }.to_vec())
}

/// CK_GCM_PARAMS, in the 3.0 layout or the 2.40 one without ulIvBits
/// (which some clients still send; told apart by the length).
///
/// # Safety
/// `param` holds the caller's structure, whose pointers are valid.
unsafe fn gcm_params(param: &[u8]) -> Result<crate::mechanism::param::AeadParams> {
    const UL: usize = std::mem::size_of::<CK_ULONG>();
    let word = |i| param_word(param, i);
    // pIv, ulIvLen, [ulIvBits,] pAAD, ulAADLen, ulTagBits
    let (iv_ptr, iv_len, aad_ptr, aad_len, tag_bits) = match param.len() {
        n if n == std::mem::size_of::<CK_GCM_PARAMS>() => {
            (word(0)?, word(1)?, word(3)?, word(4)?, word(5)?)
        }
        n if n == 5 * UL => (word(0)?, word(1)?, word(2)?, word(3)?, word(4)?),
        _ => return Err(Rv::MechanismParamInvalid),
    };
    // SAFETY: the caller's IV and AAD buffers, of the lengths it gives.
    let (iv, aad) = unsafe {
        (
            bytes(iv_ptr as *const u8, iv_len)?,
            bytes(aad_ptr as *const u8, aad_len)?,
        )
    };
    Ok(crate::mechanism::param::AeadParams {
        iv: iv.to_vec(),
        aad: aad.to_vec(),
        tag_bits,
        data_len: None,
    })
}

/// CK_CCM_PARAMS (ulDataLen, pNonce, ulNonceLen, pAAD, ulAADLen,
/// ulMACLen) as an AEAD's parameters.
///
/// # Safety
/// `param` holds a CK_CCM_PARAMS whose pointers are valid for the lengths
/// it gives.
unsafe fn ccm_params(param: &[u8]) -> Result<crate::mechanism::param::AeadParams> {
    if param.len() != std::mem::size_of::<CK_CCM_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let word = |i| param_word(param, i);
    // SAFETY: the caller's nonce and AAD buffers, of the lengths it gives.
    let (nonce, aad) = unsafe {
        (
            bytes(word(1)? as *const u8, word(2)?)?,
            bytes(word(3)? as *const u8, word(4)?)?,
        )
    };
    Ok(crate::mechanism::param::AeadParams {
        iv: nonce.to_vec(),
        aad: aad.to_vec(),
        tag_bits: word(5)?.checked_mul(8).ok_or(Rv::MechanismParamInvalid)?,
        data_len: Some(word(0)?),
    })
}

/// CK_SALSA20_CHACHA20_POLY1305_PARAMS (pNonce, ulNonceLen, pAAD,
/// ulAADLen) as an AEAD's parameters (its tag is 128 bits).
///
/// # Safety
/// `param` holds a CK_SALSA20_CHACHA20_POLY1305_PARAMS whose pointers are
/// valid for the lengths it gives.
unsafe fn chacha20_poly1305_params(param: &[u8]) -> Result<crate::mechanism::param::AeadParams> {
    if param.len() != std::mem::size_of::<CK_SALSA20_CHACHA20_POLY1305_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let word = |i| param_word(param, i);
    // SAFETY: the caller's nonce and AAD buffers, of the lengths it gives.
    let (nonce, aad) = unsafe {
        (
            bytes(word(0)? as *const u8, word(1)?)?,
            bytes(word(2)? as *const u8, word(3)?)?,
        )
    };
    Ok(crate::mechanism::param::AeadParams {
        iv: nonce.to_vec(),
        aad: aad.to_vec(),
        tag_bits: 128,
        data_len: None,
    })
}

/// CK_CHACHA20_PARAMS (pBlockCounter, blockCounterBits, pNonce,
/// ulNonceBits): the counter's bytes, then the nonce's.
///
/// # Safety
/// `param` holds a CK_CHACHA20_PARAMS whose pointers are valid for the
/// lengths it gives.
unsafe fn chacha20_params(param: &[u8]) -> Result<Vec<Vec<u8>>> {
    if param.len() != std::mem::size_of::<CK_CHACHA20_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let word = |i| param_word(param, i);
    let (counter_bits, nonce_bits) = (word(1)?, word(3)?);
    if !counter_bits.is_multiple_of(8) || !nonce_bits.is_multiple_of(8) {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: the caller's counter and nonce buffers, of the lengths it
    // gives.
    let (counter, nonce) = unsafe {
        (
            bytes(word(0)? as *const u8, counter_bits / 8)?,
            bytes(word(2)? as *const u8, nonce_bits / 8)?,
        )
    };
    Ok(vec![counter.to_vec(), nonce.to_vec()])
}

/// A template as an attribute map; a type given twice is inconsistent.
///
/// # Safety
/// `p` is null or valid for `count` CK_ATTRIBUTEs whose values are valid.
pub unsafe fn template(p: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Attrs> {
    // SAFETY: this function's promise.
    let list = unsafe { items(p, count)? };
    let mut attrs = Attrs::new();
    for a in list {
        // SAFETY: each attribute's value pointer and length come from the caller.
        let value = unsafe { bytes(a.pValue as *const u8, a.ulValueLen)? };
        if attrs.contains(a.type_) {
            return Err(Rv::TemplateInconsistent);
        }
        attrs.set(a.type_, value.to_vec());
    }
    Ok(attrs)
}

/// A search template as an attribute map, or None when it gives one type
/// two values: then no object matches (C_FindObjectsInit has no
/// CKR_TEMPLATE_INCONSISTENT).
///
/// # Safety
/// As `template`.
pub unsafe fn search_template(p: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Option<Attrs>> {
    // SAFETY: this function's promise.
    let list = unsafe { items(p, count)? };
    let mut attrs = Attrs::new();
    for a in list {
        // SAFETY: each attribute's value pointer and length come from the caller.
        let value = unsafe { bytes(a.pValue as *const u8, a.ulValueLen)? };
        match attrs.get(a.type_) {
            Some(v) if v != value => return Ok(None),
            _ => attrs.set(a.type_, value.to_vec()),
        }
    }
    Ok(Some(attrs))
}

/// A string in a blank-padded fixed field (cut at a character boundary).
pub fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut field = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    field[..end].copy_from_slice(&s.as_bytes()[..end]);
    field
}

/// The library's version from the crate version.
pub fn library_version() -> CK_VERSION {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u8>().unwrap_or(0));
    CK_VERSION {
        major: parts.next().unwrap_or(0),
        minor: parts.next().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_cuts_at_char_boundaries() {
        assert_eq!(&padded::<4>("ab"), b"ab  ");
        assert_eq!(&padded::<3>("aé"), b"a\xc3\xa9");
        assert_eq!(&padded::<2>("aé"), b"a ");
    }
}
