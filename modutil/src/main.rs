//! softoken-modutil: registers PKCS#11 modules with NSS (`pkcs11.txt`),
//! Firefox and p11-kit, says why a library does not load, and administers
//! softoken's databases through the module.

mod cli;
mod db;
mod error;
mod firefox;
mod library;
mod p11kit;
mod pkcs12;
mod progress;
mod registry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(&cli).and_then(|report| report.print(cli.json)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("softoken-modutil: {}", f.message);
            ExitCode::from(f.kind.exit_code() as u8)
        }
    }
}
