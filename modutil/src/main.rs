//! softoken-modutil: registers PKCS#11 modules with NSS (`pkcs11.txt`),
//! Firefox and p11-kit, says why a library does not load, and administers
//! softoken's databases through the module.

mod cli;
mod db;
mod error;
mod firefox;
mod foreign;
mod library;
mod p11kit;
mod pkcs12;
mod progress;
mod registry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let failure = match cli::run(&cli) {
        // A report that ends in a failure has printed its own JSON.
        Ok(report) => report.print(cli.json).err(),
        Err(f) => {
            if cli.json {
                let doc = serde_json::json!({
                    "error": f.message,
                    "kind": f.kind.name(),
                    "exit_code": f.kind.exit_code(),
                });
                println!("{doc}");
            }
            Some(f)
        }
    };
    match failure {
        None => ExitCode::SUCCESS,
        Some(f) => {
            eprintln!("softoken-modutil: {}", f.message);
            ExitCode::from(f.kind.exit_code() as u8)
        }
    }
}
