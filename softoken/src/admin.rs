//! What a tool that owns the database needs beyond the C API, for
//! softoken-modutil: the full integrity check (no PKCS#11 call decrypts
//! every value and verifies every record), the merge of one database into
//! another (which needs every value and record, as the check does), and
//! the ciphers of PKCS#12 files, which are NSS's password-based ones. Everything else a tool does
//! goes through the C function list, as any client's calls do.

use std::path::PathBuf;

use pkcs11_sys::{
    CKA_CLASS, CKA_ID, CKA_ISSUER, CKA_LABEL, CKA_SERIAL_NUMBER, CKF_LOGIN_REQUIRED,
    CKO_CERTIFICATE, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY, CKU_USER, CK_ATTRIBUTE_TYPE,
    CK_OBJECT_HANDLE, CK_ULONG,
};

use crate::config::Config;
use crate::object::attrs::Attrs;
use crate::token::{AttrRead, Token};

pub use crate::config::{system_config_dirs, user_config_dir, CONFIG_FILE};
pub use crate::engine::rc2::rc2_cbc_decrypt;
pub use crate::rv::Rv;
pub use crate::storage::pbe::{aes_cbc_decrypt, aes_cbc_encrypt, des3_cbc_decrypt};
pub use crate::token::guessing::{PinFailures, PinPolicy, MAX_DELAY_MS};
pub use crate::token::merge::{MergeCounts, MergeReport};
pub use crate::token::IntegrityReport;

/// An object of another PKCS#11 token, to merge: the attributes a
/// creation template may carry, and for a key the secret part it was
/// wrapped out as (a private key's PKCS#8, a secret key's value).
pub struct ForeignObject {
    pub attributes: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
    pub key_material: Option<zeroize::Zeroizing<Vec<u8>>>,
}

/// Why a database could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The parameter string names no database the module can open.
    BadLocation(Rv),
    /// The parameters name no database token.
    NoToken,
    /// The directory holds no key database of the named format.
    NoKeyDatabase { dir: PathBuf, file: &'static str },
    /// The database is there but did not open.
    Open(Rv),
}

/// One database token, opened the way the module opens the first token of
/// a parameter string, outside any PKCS#11 session.
pub struct Database {
    token: Token,
}

/// The module a parameter string configures, as its C API cannot tell:
/// its manufacturer (what C_GetInfo shows) and where each database token
/// lives, by slot id (`PREFIX:DIR`).
pub struct Configured {
    pub manufacturer: String,
    pub tokens: Vec<(u64, String)>,
}

/// What the module would open for `params` (None: what it opens without a
/// parameter string: the configuration file, the environment, the default).
pub fn configured(params: Option<&str>) -> Result<Configured, Rv> {
    let config = Config::from_parameters(params)?;
    Ok(Configured {
        manufacturer: config.manufacturer_id,
        tokens: config
            .tokens
            .iter()
            .map(|t| {
                (
                    t.slot_id,
                    format!("{}:{}", t.backend.prefix, t.dir.display()),
                )
            })
            .collect(),
    })
}

impl Database {
    /// Opens the first token that `params` (a parameter string as NSS
    /// passes it, or None for the module's default) names.
    pub fn open(params: Option<&str>) -> Result<Database, OpenError> {
        let config = Config::from_parameters(params).map_err(OpenError::BadLocation)?;
        let cfg = config.tokens.into_iter().next().ok_or(OpenError::NoToken)?;
        let file = cfg.backend.key_file;
        // A sql: directory of legacy files only opens too (Mode 2).
        let legacy = crate::storage::backends::BACKENDS
            .update_source
            .is_some_and(|b| b.files_exist(&cfg.dir, &cfg.cert_prefix, &cfg.key_prefix));
        if !cfg.dir.join(format!("{}{file}", cfg.key_prefix)).exists() && !legacy {
            return Err(OpenError::NoKeyDatabase { dir: cfg.dir, file });
        }
        let token = Token::open(cfg).map_err(OpenError::Open)?;
        Ok(Database { token })
    }

    /// Whether the database has a password (else it opens without login).
    pub fn login_required(&self) -> bool {
        self.token.flags() & CKF_LOGIN_REQUIRED != 0
    }

    /// Logs in as the user with the database's password.
    pub fn login(&self, password: &[u8]) -> Result<(), Rv> {
        self.token.login(CKU_USER, password, false)
    }

    /// Decrypts every private value and verifies every integrity record;
    /// `progress` hears (objects done, objects in all).
    pub fn check(&self, progress: &mut dyn FnMut(usize, usize)) -> Result<IntegrityReport, Rv> {
        self.token.check_integrity(progress)
    }

    /// Merges every object of `source` into this database by NSS's rules
    /// (as certutil --merge): what is there already is not added again,
    /// so a second run changes nothing. See `MergeReport` for what is
    /// left out.
    pub fn merge_from(
        &self,
        source: &Database,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<MergeReport, Rv> {
        self.token.merge_from(&source.token, progress)
    }

    /// Merges the objects of another PKCS#11 token by the rules of
    /// `merge_from`; each is checked as C_UnwrapKey or C_CreateObject
    /// would check it, and the ones refused are reported by their place in
    /// `objects`.
    pub fn merge_foreign(
        &self,
        objects: Vec<ForeignObject>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<MergeReport, Rv> {
        let objects = objects
            .into_iter()
            .map(|o| (o.attributes.into_iter().collect(), o.key_material))
            .collect();
        self.token.merge_foreign(objects, progress)
    }

    /// The database's PIN-guessing policy and the wrong PINs it counted.
    pub fn pin_policy(&self) -> Result<(PinPolicy, PinFailures), Rv> {
        Ok((self.token.pin_policy()?, self.token.pin_failures()?))
    }

    /// Sets the PIN-guessing policy (after login); all zero removes it.
    pub fn set_pin_policy(&self, policy: PinPolicy) -> Result<(), Rv> {
        self.token.set_pin_policy(policy)
    }

    /// Forgets the wrong PINs counted, which unlocks a locked PIN: for
    /// whoever may write the database (who could also copy it and guess
    /// offline).
    pub fn clear_pin_failures(&self) -> Result<(), Rv> {
        self.token.clear_pin_failures()
    }

    /// The token objects that carry every attribute of `template`.
    pub fn find(
        &self,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<Vec<CK_OBJECT_HANDLE>, Rv> {
        self.token
            .find(&template.iter().cloned().collect::<Attrs>())
    }

    /// How a report names an object to its owner: its CKA_LABEL, else, for
    /// the trust or the key of a certificate (which NSS leaves unlabelled),
    /// that certificate's nickname.
    pub fn describe(&self, object: CK_OBJECT_HANDLE) -> Option<String> {
        let value = |h, t| match self.token.get_attributes(h, &[t]).ok()?.pop()? {
            AttrRead::Value(v) => Some(v.to_vec()),
            _ => None,
        };
        let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
        if let Some(label) = value(object, CKA_LABEL).filter(|l| !l.is_empty()) {
            return Some(text(label));
        }
        let class = value(object, CKA_CLASS)?;
        let (what, matching) = match CK_ULONG::from_ne_bytes(class.as_slice().try_into().ok()?) {
            crate::nss::CKO_NSS_TRUST => ("trust of", vec![CKA_ISSUER, CKA_SERIAL_NUMBER]),
            CKO_PRIVATE_KEY | CKO_PUBLIC_KEY | CKO_SECRET_KEY => ("key of", vec![CKA_ID]),
            _ => return None,
        };
        let mut template: Attrs = matching
            .into_iter()
            .map(|t| Some((t, value(object, t)?)))
            .collect::<Option<Attrs>>()?;
        template.set(CKA_CLASS, CKO_CERTIFICATE.to_ne_bytes().to_vec());
        let cert = *self.token.find(&template).ok()?.first()?;
        Some(format!("{what} {}", text(value(cert, CKA_LABEL)?)))
    }

    /// Every attribute of an object, private values decrypted (after
    /// login): what the database holds, for its owner.
    pub fn attributes(&self, object: CK_OBJECT_HANDLE) -> Result<Values, Rv> {
        self.token.full_attributes(object).map(Values)
    }
}

/// An object's attribute values, wiped when dropped.
pub struct Values(Attrs);

impl Values {
    pub fn get(&self, t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.0.get(t)
    }
}
