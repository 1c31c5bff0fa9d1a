//! Loading a PKCS#11 library, and saying exactly why one cannot be loaded:
//! the file is missing, is not a shared object, is built for another
//! machine, lacks a library it needs, is no PKCS#11 module, or its
//! C_Initialize fails (with the CK_RV). NSS and Firefox say only
//! "failed to load".

use std::ffi::CString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

use crate::error::{Failure, Kind, Outcome};

/// Where the module this tool ships with is, from the program's directory:
/// beside it (where cargo builds both), `../lib/pkcs11` (`scripts/install`:
/// PREFIX/bin and PREFIX/lib/pkcs11), and `../lib/TRIPLET/pkcs11` (a Debian
/// package: p11-kit's module directory, x86_64-linux-gnu here).
pub fn module_places() -> [String; 3] {
    [
        "libsoftoken.so".to_owned(),
        "../lib/pkcs11/libsoftoken.so".to_owned(),
        format!(
            "../lib/{}-linux-gnu/pkcs11/libsoftoken.so",
            std::env::consts::ARCH
        ),
    ]
}

/// The module this tool ships with (the first of [`module_places`] there
/// is), else the bare name, which the loader looks for.
pub fn default_module() -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    dir.and_then(|d| {
        module_places()
            .iter()
            .map(|place| d.join(place))
            .find(|p| p.exists())
    })
    .and_then(|p| std::fs::canonicalize(p).ok())
    .unwrap_or_else(|| PathBuf::from("libsoftoken.so"))
}

/// `CKR_PIN_INCORRECT` for cryptoki's `PinIncorrect`.
pub fn rv_name(rv: &cryptoki::error::RvError) -> String {
    let debug = format!("{rv:?}");
    let mut name = String::from("CKR");
    for c in debug.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// A cryptoki error as a failure, the PIN errors as a wrong password.
pub fn p11_failure(what: &str, e: cryptoki::error::Error) -> Failure {
    match e {
        cryptoki::error::Error::Pkcs11(rv, _) => rv_failure(what, rv),
        other => Failure::new(Kind::Failed, format!("{what}: {other}")),
    }
}

/// A return code as the user reads it: its name, and what to do where the
/// code says something of the database.
pub fn rv_failure(what: &str, rv: cryptoki::error::RvError) -> Failure {
    use cryptoki::error::RvError;
    let kind = match rv {
        RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange => Kind::WrongPassword,
        RvError::TokenWriteProtected | RvError::SessionReadOnly => Kind::ReadOnly,
        RvError::TokenNotPresent => Kind::NotFound,
        _ => Kind::Failed,
    };
    let hint = match rv {
        RvError::PinIncorrect => " (wrong password)",
        RvError::TokenWriteProtected => " (the database is read-only)",
        RvError::TokenNotPresent => {
            " (no database directory there: check --dbdir, or make a new database \
             with `softoken-modutil create`)"
        }
        RvError::TokenNotRecognized => {
            " (the files there are not an NSS database softoken can read: another \
             program's, empty or damaged; they are left untouched. SOFTOKEN_LOG=stderr \
             names the file)"
        }
        RvError::DeviceError => {
            " (the database cannot be read or made, or a value in it is damaged: \
             SOFTOKEN_LOG=stderr names the file and the cause)"
        }
        _ => "",
    };
    Failure::new(kind, format!("{what}: {}{hint}", rv_name(&rv)))
}

fn elf_machine_name(machine: u16) -> String {
    match machine {
        3 => "x86 (i386)".into(),
        8 => "MIPS".into(),
        20 => "PowerPC".into(),
        21 => "PowerPC64".into(),
        22 => "s390".into(),
        40 => "ARM".into(),
        62 => "x86_64".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        258 => "LoongArch".into(),
        other => format!("machine type {other}"),
    }
}

/// The ELF machine and class (32/64-bit) this program runs as.
fn host_machine() -> Option<(u16, u8)> {
    let machine = match std::env::consts::ARCH {
        "x86" => 3,
        "x86_64" => 62,
        "arm" => 40,
        "aarch64" => 183,
        "powerpc64" => 21,
        "s390x" => 22,
        "riscv64" => 243,
        "loongarch64" => 258,
        _ => return None,
    };
    let class = if cfg!(target_pointer_width = "64") {
        2
    } else {
        1
    };
    Some((machine, class))
}

/// Checks of the file itself, before any attempt to load it.
pub fn check_file(path: &Path) -> Outcome<()> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::new(
            Kind::NotFound,
            format!("library {}: no such file", path.display()),
        ),
        _ => Failure::new(
            Kind::BadLibrary,
            format!("library {}: cannot read: {e}", path.display()),
        ),
    })?;
    if meta.is_dir() {
        return Err(Failure::new(
            Kind::BadLibrary,
            format!(
                "library {} is a directory, not a shared object",
                path.display()
            ),
        ));
    }
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| {
            Failure::new(
                Kind::BadLibrary,
                format!("library {}: cannot read: {e}", path.display()),
            )
        })?;
    let head = &head[..n];
    let bad = |why: String| {
        Failure::new(
            Kind::BadLibrary,
            format!("library {}: {why}", path.display()),
        )
    };
    if !head.starts_with(b"\x7fELF") {
        let what = if head.is_empty() {
            "an empty file".to_string()
        } else if head.starts_with(b"#!") {
            "a script".to_string()
        } else if head
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        {
            "a text file".to_string()
        } else {
            "not an ELF file".to_string()
        };
        return Err(bad(format!("is {what}, not a shared object")));
    }
    if head.len() < 20 {
        return Err(bad("is a truncated ELF file".into()));
    }
    let class = head[4];
    let little = head[5] == 1;
    let u16_at = |i: usize| {
        let b = [head[i], head[i + 1]];
        if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let (e_type, machine) = (u16_at(16), u16_at(18));
    if let Some((host, host_class)) = host_machine() {
        if machine != host || class != host_class {
            return Err(bad(format!(
                "is built for {} ({}-bit), but this machine runs {} ({}-bit) programs",
                elf_machine_name(machine),
                if class == 2 { 64 } else { 32 },
                elf_machine_name(host),
                if host_class == 2 { 64 } else { 32 },
            )));
        }
    }
    if e_type != 3 {
        let what = match e_type {
            1 => "a relocatable object (.o)",
            2 => "an executable",
            4 => "a core dump",
            _ => "an ELF file of unknown type",
        };
        return Err(bad(format!("is {what}, not a shared object")));
    }
    Ok(())
}

/// A loaded, initialised module (cryptoki finalises it when dropped).
pub struct Module {
    pub pkcs11: Pkcs11,
}

impl Module {
    /// Every slot, with a token or not.
    pub fn slots(&self) -> Outcome<Vec<cryptoki::slot::Slot>> {
        self.pkcs11
            .get_all_slots()
            .map_err(|e| p11_failure("C_GetSlotList", e))
    }
}

/// Loads and initialises a module, `params` passed as NSS passes a
/// module's parameter string (in `pReserved`).
pub fn load(path: &Path, params: Option<&str>) -> Outcome<Module> {
    check_file(path)?;
    let shown = path.display();
    // Load it once by hand, to tell a missing dependency from a library
    // that is no PKCS#11 module.
    {
        // SAFETY: loading a library runs its initialisers; loading the
        // library the user named is what this tool is asked to do.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
            Failure::new(
                Kind::BadLibrary,
                format!("library {shown} cannot be loaded: {e}"),
            )
        })?;
        // SAFETY: only the symbol's presence is checked; it is not called.
        let symbol = unsafe { lib.get::<unsafe extern "C" fn()>(b"C_GetFunctionList\0") };
        if symbol.is_err() {
            return Err(Failure::new(
                Kind::BadLibrary,
                format!("library {shown} is a shared object but not a PKCS#11 module: it has no C_GetFunctionList"),
            ));
        }
    }
    let pkcs11 = Pkcs11::new(path).map_err(|e| {
        Failure::new(
            Kind::BadLibrary,
            format!("library {shown} cannot be loaded: {e}"),
        )
    })?;
    let params = params
        .filter(|p| !p.is_empty())
        .map(|p| {
            CString::new(p)
                .map_err(|_| Failure::new(Kind::Failed, "the parameter string contains a NUL byte"))
        })
        .transpose()?;
    let args = match &params {
        // SAFETY: the parameter string outlives C_Initialize, the only
        // call that reads pReserved.
        Some(p) => unsafe {
            CInitializeArgs::new_with_reserved(
                CInitializeFlags::OS_LOCKING_OK,
                NonNull::from(p.as_bytes_with_nul()).cast(),
            )
        },
        None => CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK),
    };
    pkcs11.initialize(args).map_err(|e| {
        let mut f = p11_failure(&format!("library {shown}: C_Initialize failed"), e);
        f.kind = Kind::BadLibrary;
        if params.is_none() {
            f.message.push_str(
                "; some modules (NSS's softoken among them) need a parameter string: give --params",
            );
        }
        f
    })?;
    Ok(Module { pkcs11 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_no_library_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            check_file(&p).unwrap_err().message
        };
        assert!(check("empty.so", b"").contains("an empty file"));
        assert!(check("script.so", b"#!/bin/sh\n").contains("a script"));
        assert!(check("text.so", b"hello\n").contains("a text file"));
        assert!(check("bin.so", &[0, 1, 2, 3]).contains("not an ELF file"));
        let mut arm = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        arm.resize(16, 0);
        arm.extend_from_slice(&[3, 0, 183, 0]);
        if std::env::consts::ARCH != "aarch64" {
            assert!(check("arm.so", &arm).contains("is built for AArch64 (64-bit)"));
        }
        assert!(check_file(&dir.path().join("absent.so"))
            .unwrap_err()
            .message
            .contains("no such file"));
        assert_eq!(check_file(dir.path()).unwrap_err().kind, Kind::BadLibrary);
    }

    #[test]
    fn rv_names_are_pkcs11_names() {
        assert_eq!(
            rv_name(&cryptoki::error::RvError::PinIncorrect),
            "CKR_PIN_INCORRECT"
        );
    }
}
