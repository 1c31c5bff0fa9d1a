//! The module as a Rust client sees it through the cryptoki crate: token
//! set-up, login rules, objects, and persistence across C_Finalize and
//! across processes.

use std::process::Command;

use cryptoki::error::{Error, RvError};
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use softoken_tests::*;

fn pin(p: &str) -> AuthPin {
    AuthPin::new(p.into())
}

fn rv(e: Error) -> RvError {
    match e {
        Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other}"),
    }
}

#[test]
fn token_setup_login_objects_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let params = sql_params(dir.path());
    let first = client(&params);
    let p11 = &first.p11;
    let slot = p11.get_slots_with_token().unwrap()[0];
    assert_eq!(p11.get_token_info(slot).unwrap().label(), "softoken");

    p11.init_token(slot, &pin("so secret"), "cryptoki token")
        .unwrap();
    assert_eq!(p11.get_token_info(slot).unwrap().label(), "cryptoki token");
    assert_eq!(
        rv(p11.init_token(slot, &pin("guess"), "x").unwrap_err()),
        RvError::PinIncorrect
    );
    {
        let session = p11.open_rw_session(slot).unwrap();
        assert_eq!(
            rv(session
                .login(UserType::User, Some(&pin("user")))
                .unwrap_err()),
            RvError::UserPinNotInitialized
        );
        session
            .login(UserType::So, Some(&pin("so secret")))
            .unwrap();
        session.init_pin(&pin("user secret")).unwrap();
        session.logout().unwrap();
        assert_eq!(
            rv(session
                .login(UserType::User, Some(&pin("wrong")))
                .unwrap_err()),
            RvError::PinIncorrect
        );
        session
            .login(UserType::User, Some(&pin("user secret")))
            .unwrap();
        assert_eq!(
            rv(session
                .login(UserType::User, Some(&pin("user secret")))
                .unwrap_err()),
            RvError::UserAlreadyLoggedIn
        );

        let cert = std::fs::read(fixtures().join("exports/Fixture_Peer.der")).unwrap();
        let fields = cert_fields(&cert);
        session
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Label(b"peer".to_vec()),
                Attribute::Subject(fields.subject),
                Attribute::Issuer(fields.issuer),
                Attribute::SerialNumber(fields.serial),
                Attribute::Value(cert.clone()),
            ])
            .unwrap();
        let secret = session
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(b"secret note".to_vec()),
                Attribute::Value(b"remember this".to_vec()),
            ])
            .unwrap();
        session
            .update_attributes(secret, &[Attribute::Application(b"tests".to_vec())])
            .unwrap();
        let attrs = session
            .get_attributes(secret, &[AttributeType::Value, AttributeType::Application])
            .unwrap();
        assert_eq!(attrs[0], Attribute::Value(b"remember this".to_vec()));
        assert_eq!(attrs[1], Attribute::Application(b"tests".to_vec()));
    }
    first.p11.finalize().unwrap();

    // A new module instance (C_Initialize again) finds everything.
    let again = client(&params);
    let slot = again.p11.get_slots_with_token().unwrap()[0];
    let session = again.p11.open_ro_session(slot).unwrap();
    let notes = [Attribute::Label(b"secret note".to_vec())];
    assert!(
        session.find_objects(&notes).unwrap().is_empty(),
        "private before login"
    );
    assert_eq!(
        session
            .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
            .unwrap()
            .len(),
        1
    );
    session
        .login(UserType::User, Some(&pin("user secret")))
        .unwrap();
    let found = session.find_objects(&notes).unwrap();
    assert_eq!(found.len(), 1);
    drop(session);

    // Another process reads what this one wrote.
    let out = run(Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module_path())
        .args([
            "--login",
            "--pin",
            "user secret",
            "--read-object",
            "--type",
            "data",
            "--label",
            "secret note",
        ])
        .env(
            "SOFTOKEN_CONFIGDIR",
            format!("sql:{}", dir.path().display()),
        ));
    assert_eq!(out, "remember this");
}
