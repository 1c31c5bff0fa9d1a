//! CKA_EC_POINT's encoding, shared by the NIST curves and Curve25519: the
//! point in a DER OCTET STRING, as NSS and the specification have it.

use crate::engine::Curve;
use crate::rv::{Result, Rv};

/// CKA_EC_POINT as NSS writes it: the point in a DER OCTET STRING.
pub fn wrap_point(point: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    if point.len() < 0x80 {
        out.push(point.len() as u8);
    } else {
        out.extend_from_slice(&[0x81, point.len() as u8]);
    }
    out.extend_from_slice(point);
    out
}

/// The point of a CKA_EC_POINT value, given wrapped (as NSS and the
/// specification have it) or raw (as some clients send it).
pub fn unwrap_point(curve: Curve, value: &[u8]) -> Result<&[u8]> {
    let raw_len = 2 * curve.field_len() + 1;
    if value.len() == raw_len && value[0] == 0x04 {
        return Ok(value);
    }
    let (header, len) = match value {
        [0x04, 0x81, n, ..] => (3, *n as usize),
        [0x04, n, ..] if *n < 0x80 => (2, *n as usize),
        _ => return Err(Rv::KeyTypeInconsistent),
    };
    if value.len() != header + len {
        return Err(Rv::KeyTypeInconsistent);
    }
    Ok(&value[header..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_in_both_encodings() {
        let raw = [vec![4u8], vec![9u8; 64]].concat();
        let wrapped = wrap_point(&raw);
        assert_eq!(&wrapped[..2], &[0x04, 0x41]);
        assert_eq!(unwrap_point(Curve::P256, &wrapped).unwrap(), &raw[..]);
        assert_eq!(unwrap_point(Curve::P256, &raw).unwrap(), &raw[..]);
        let p521 = [vec![4u8], vec![9u8; 132]].concat();
        assert_eq!(&wrap_point(&p521)[..3], &[0x04, 0x81, 133]);
        assert_eq!(
            unwrap_point(Curve::P521, &wrap_point(&p521)).unwrap(),
            &p521[..]
        );
        assert!(unwrap_point(Curve::P256, &wrapped[..20]).is_err());
    }
}
