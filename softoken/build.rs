//! The module's ELF name (SONAME): what packaging tools and `ldd` expect of
//! a shared library, and what p11-kit and NSS name it by. Modules are
//! loaded by path, so the name carries no version.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsoftoken.so");
}
