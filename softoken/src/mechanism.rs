//! The mechanisms: each is a value in one table, with its
//! CK_MECHANISM_INFO and the constructor of its operation.

use aws_lc_rs::digest;
use pkcs11_sys::*;

use crate::rv::{Result, Rv};

/// What a mechanism makes.
#[derive(Clone, Copy)]
pub enum Operation {
    Digest(&'static digest::Algorithm),
}

pub struct Mechanism {
    pub ty: CK_MECHANISM_TYPE,
    pub min_key_size: CK_ULONG,
    pub max_key_size: CK_ULONG,
    pub flags: CK_FLAGS,
    pub operation: Operation,
}

const fn digest_mechanism(ty: CK_MECHANISM_TYPE, alg: &'static digest::Algorithm) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 0,
        max_key_size: 0,
        flags: CKF_DIGEST,
        operation: Operation::Digest(alg),
    }
}

static MECHANISMS: &[Mechanism] = &[
    digest_mechanism(CKM_SHA_1, &digest::SHA1_FOR_LEGACY_USE_ONLY),
    digest_mechanism(CKM_SHA224, &digest::SHA224),
    digest_mechanism(CKM_SHA256, &digest::SHA256),
    digest_mechanism(CKM_SHA384, &digest::SHA384),
    digest_mechanism(CKM_SHA512, &digest::SHA512),
    digest_mechanism(CKM_SHA512_256, &digest::SHA512_256),
    digest_mechanism(CKM_SHA3_256, &digest::SHA3_256),
    digest_mechanism(CKM_SHA3_384, &digest::SHA3_384),
    digest_mechanism(CKM_SHA3_512, &digest::SHA3_512),
];

pub fn all() -> &'static [Mechanism] {
    MECHANISMS
}

pub fn find(ty: CK_MECHANISM_TYPE) -> Result<&'static Mechanism> {
    MECHANISMS
        .iter()
        .find(|m| m.ty == ty)
        .ok_or(Rv::MechanismInvalid)
}

/// A digest in progress.
#[derive(Clone)]
pub struct DigestOp {
    ctx: digest::Context,
    /// Whether C_DigestUpdate/C_DigestKey started a multi-part digest (then
    /// C_Digest is not allowed).
    pub multi_part: bool,
}

impl DigestOp {
    pub fn new(m: &Mechanism) -> Result<DigestOp> {
        match m.operation {
            Operation::Digest(alg) => Ok(DigestOp {
                ctx: digest::Context::new(alg),
                multi_part: false,
            }),
        }
    }

    pub fn output_len(&self) -> usize {
        self.ctx.algorithm().output_len()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
    }

    /// The digest so far, leaving the operation as it is (the caller ends it
    /// once the result has been delivered).
    pub fn result(&self) -> Vec<u8> {
        self.ctx.clone().finish().as_ref().to_vec()
    }
}
