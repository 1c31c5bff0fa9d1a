//! What is kept built between calls: private keys in aws-lc's form
//! (`built`, process-wide) and engine contexts per session (`kept`).

pub mod built;
pub mod kept;
