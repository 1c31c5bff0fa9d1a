//! secmod.db records (docs/nss-db-format.md §2.5): one per PKCS#11
//! module, keyed by its name, with big-endian fields.

use crate::{Error, Result};

/// One slot's saved settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotSettings {
    pub slot_id: u32,
    pub default_flags: u32,
    pub timeout: u32,
    /// 0 "any", 1 "timeout", -1 "every".
    pub askpw: i8,
    pub has_root_certs: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub library: String,
    pub parameters: String,
    pub internal: bool,
    pub fips: bool,
    pub ssl: [u8; 8],
    pub trust_order: u32,
    pub cipher_order: u32,
    pub is_module_db: bool,
    pub is_module_db_only: bool,
    pub is_critical: bool,
    pub slots: Vec<SlotSettings>,
}

const NAMES_OFFSET: usize = 32;
const SLOT_LEN: usize = 32;

fn be16(b: &[u8], at: usize) -> Result<usize> {
    b.get(at..at + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]) as usize)
        .ok_or_else(|| Error::corrupt("module record shorter than its offsets say"))
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        .ok_or_else(|| Error::corrupt("module record shorter than its offsets say"))
}

/// A length-prefixed string at `at`; returns it and the offset after it.
fn string(b: &[u8], at: usize) -> Result<(String, usize)> {
    let len = be16(b, at)?;
    let bytes = b
        .get(at + 2..at + 2 + len)
        .ok_or_else(|| Error::corrupt("module string past the record"))?;
    // NSS reads these as C strings.
    let bytes = bytes.split(|b| *b == 0).next().unwrap_or(&[]);
    let s = String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::corrupt("module string is not UTF-8"))?;
    Ok((s, at + 2 + len))
}

pub fn decode(key: &[u8], data: &[u8]) -> Result<Module> {
    if data.len() < NAMES_OFFSET {
        return Err(Error::corrupt("module record shorter than its header"));
    }
    let names = be16(data, 2)?;
    let slots_at = be16(data, 4)?;
    let (name, next) = string(data, names)?;
    let (library, next) = string(data, next)?;
    // Older records stop before the parameters.
    let has_parameters = if slots_at == 0 {
        next + 2 <= data.len()
    } else {
        next + 2 <= slots_at
    };
    let parameters = if has_parameters {
        string(data, next)?.0
    } else {
        String::new()
    };
    let mut slots = Vec::new();
    if slots_at != 0 {
        let count = be16(data, slots_at)?;
        for i in 0..count {
            let at = slots_at + 2 + i * SLOT_LEN;
            let askpw = *data
                .get(at + 12)
                .ok_or_else(|| Error::corrupt("slot past the record"))?;
            slots.push(SlotSettings {
                slot_id: be32(data, at)?,
                default_flags: be32(data, at + 4)?,
                timeout: be32(data, at + 8)?,
                askpw: askpw as i8,
                has_root_certs: *data
                    .get(at + 13)
                    .ok_or_else(|| Error::corrupt("slot past the record"))?
                    != 0,
            });
        }
    }
    let key_name = String::from_utf8_lossy(key.split(|b| *b == 0).next().unwrap_or(&[]));
    let name = if name.is_empty() {
        key_name.into_owned()
    } else {
        name
    };
    let mut ssl = [0u8; 8];
    ssl.copy_from_slice(&data[8..16]);
    Ok(Module {
        name,
        library,
        parameters,
        internal: data[6] != 0,
        fips: data[7] != 0,
        ssl,
        trust_order: be32(data, 16)?,
        cipher_order: be32(data, 20)?,
        is_module_db: data[25] != 0,
        is_module_db_only: data[26] != 0,
        is_critical: data[27] != 0,
        slots,
    })
}

pub fn encode(m: &Module) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut names = Vec::new();
    // NSS writes the strings without a terminating NUL.
    for s in [&m.name, &m.library, &m.parameters] {
        let bytes = s.as_bytes();
        let len = u16::try_from(bytes.len()).map_err(|_| Error::TooLarge)?;
        names.extend_from_slice(&len.to_be_bytes());
        names.extend_from_slice(bytes);
    }
    let slots_at = NAMES_OFFSET + names.len();
    let mut data = vec![0u8; NAMES_OFFSET];
    data[1] = 6; // version 0.6
    data[2..4].copy_from_slice(&(NAMES_OFFSET as u16).to_be_bytes());
    let slots_at16 = u16::try_from(slots_at).map_err(|_| Error::TooLarge)?;
    data[4..6].copy_from_slice(&slots_at16.to_be_bytes());
    data[6] = m.internal as u8;
    data[7] = m.fips as u8;
    data[8..16].copy_from_slice(&m.ssl);
    data[16..20].copy_from_slice(&m.trust_order.to_be_bytes());
    data[20..24].copy_from_slice(&m.cipher_order.to_be_bytes());
    data[25] = m.is_module_db as u8;
    data[26] = m.is_module_db_only as u8;
    data[27] = m.is_critical as u8;
    data.extend_from_slice(&names);
    let count = u16::try_from(m.slots.len()).map_err(|_| Error::TooLarge)?;
    data.extend_from_slice(&count.to_be_bytes());
    for s in &m.slots {
        let mut slot = [0u8; SLOT_LEN];
        slot[0..4].copy_from_slice(&s.slot_id.to_be_bytes());
        slot[4..8].copy_from_slice(&s.default_flags.to_be_bytes());
        slot[8..12].copy_from_slice(&s.timeout.to_be_bytes());
        slot[12] = s.askpw as u8;
        slot[13] = s.has_root_certs as u8;
        data.extend_from_slice(&slot);
    }
    Ok((m.name.as_bytes().to_vec(), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_round_trip_and_damage_is_an_error() {
        let m = Module {
            name: "NSS Internal PKCS #11 Module".into(),
            library: String::new(),
            parameters: "flags=x".into(),
            internal: true,
            fips: false,
            ssl: [0; 8],
            trust_order: 75,
            cipher_order: 100,
            is_module_db: true,
            is_module_db_only: false,
            is_critical: true,
            slots: vec![SlotSettings {
                slot_id: 1,
                default_flags: 0xa007_ff3d,
                timeout: 30,
                askpw: -1,
                has_root_certs: false,
            }],
        };
        let (k, d) = encode(&m).unwrap();
        assert_eq!(decode(&k, &d).unwrap(), m);
        for len in 0..d.len() {
            let _ = decode(&k, &d[..len]);
        }
        assert!(decode(&k, &d[..20]).is_err());
    }
}
