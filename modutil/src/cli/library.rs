//! Whether a library loads as a PKCS#11 module, and if not, why.

use std::path::Path;

use serde_json::json;

use super::Report;
use crate::error::Outcome;
use crate::library;

pub fn check(path: &Path, params: Option<&str>) -> Outcome<Report> {
    // The loader looks for a bare name in the system's library path, never
    // here; the user means the file in this directory.
    let here;
    let path = if path.components().count() == 1 && !path.is_absolute() {
        here = Path::new(".").join(path);
        &here
    } else {
        path
    };
    let module = library::load(path, params)?;
    let info = module
        .pkcs11
        .get_library_info()
        .map_err(|e| library::p11_failure("C_GetInfo", e))?;
    let slots = module.slots()?;
    Ok(Report::new(
        format!(
            "{} is a working PKCS#11 module: {} ({}), version {}, {} slot(s)",
            path.display(),
            info.library_description().trim_end(),
            info.manufacturer_id().trim_end(),
            info.library_version(),
            slots.len()
        ),
        json!({
            "library": path,
            "description": info.library_description().trim_end(),
            "manufacturer": info.manufacturer_id().trim_end(),
            "version": info.library_version().to_string(),
            "cryptoki_version": info.cryptoki_version().to_string(),
            "slots": slots.len(),
        }),
    ))
}
