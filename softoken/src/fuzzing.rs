//! The parsers of attacker-controlled input, named for the fuzz targets
//! (built only under cargo fuzz's `--cfg fuzzing`).

pub use crate::config::Config;
pub use crate::mechanism::ec::{curve_of, verify_op};
pub use crate::mechanism::op::VerifyOp;
pub use crate::mechanism::pkcs8::unwrapped_key;
pub use crate::mechanism::point::unwrap_point;
pub use crate::object::attrs::Attrs;
pub use crate::object::{check_change, new_object};
pub use crate::storage::pbe::{Encrypted, MacRecord};
