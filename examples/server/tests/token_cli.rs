//! The `eventsync-token` binary prints tokens that the server's `Authority` accepts.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use eventsync_server::auth::{AuthError, Authority, Rights};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eventsync-token"))
        .args(args)
        .env_remove("EVENTSYNC_AUTH_SECRET")
        .output()
        .expect("run eventsync-token")
}

fn token_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(stdout.ends_with('\n'));
    let token = stdout.trim_end().to_owned();
    assert_eq!(token.lines().count(), 1, "one line: {stdout:?}");
    token
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn minted_token_verifies() {
    let before = now();
    let output = run(&[
        "--secret",
        "S",
        "--document",
        "doc-1",
        "--client",
        "alice",
        "--rights",
        "write",
        "--ttl",
        "3600",
    ]);
    let token = token_of(&output);
    let after = now();
    let claims = Authority::new("S").verify(&token, "doc-1", after).unwrap();
    assert_eq!(claims.document_id, "doc-1");
    assert_eq!(claims.client_id, "alice");
    assert_eq!(claims.rights, Rights::Write);
    assert!(
        (before + 3600..=after + 3600).contains(&claims.exp),
        "exp {}",
        claims.exp
    );
    // Another secret or document refuses it; it expires after its ttl.
    assert!(matches!(
        Authority::new("T").verify(&token, "doc-1", after),
        Err(AuthError::BadSignature)
    ));
    assert!(matches!(
        Authority::new("S").verify(&token, "doc-2", after),
        Err(AuthError::WrongDocument { .. })
    ));
    assert!(matches!(
        Authority::new("S").verify(&token, "doc-1", claims.exp),
        Err(AuthError::Expired { .. })
    ));
}

#[test]
fn secret_from_env_star_document_and_default_rights() {
    let output = Command::new(env!("CARGO_BIN_EXE_eventsync-token"))
        .args(["--document", "*", "--client", "bob", "--exp", "4102444800"])
        .env("EVENTSYNC_AUTH_SECRET", "from-env")
        .output()
        .unwrap();
    let token = token_of(&output);
    let claims = Authority::new("from-env")
        .verify(&token, "any-document", 4_102_444_799)
        .unwrap();
    assert_eq!(claims.document_id, "*");
    assert_eq!(claims.rights, Rights::Read, "read is the default");
    assert_eq!(claims.exp, 4_102_444_800);
}

#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["--document", "doc-1", "--client", "alice"][..], // no secret
        &["--secret", "", "--document", "doc-1", "--client", "alice"],
        &["--secret", "S", "--document", "doc-1", "--client", "server"],
        &["--secret", "S", "--document", "a/b", "--client", "alice"],
        &["--secret", "S", "--document", "doc-1", "--client", ""],
        &[
            "--secret",
            "S",
            "--document",
            "doc-1",
            "--client",
            "alice",
            "--rights",
            "admin",
        ],
        &[
            "--secret",
            "S",
            "--document",
            "doc-1",
            "--client",
            "alice",
            "--ttl",
            "0",
        ],
        &[
            "--secret",
            "S",
            "--document",
            "doc-1",
            "--client",
            "alice",
            "--ttl",
            "1",
            "--exp",
            "5",
        ],
    ] {
        let output = run(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(output.stdout.is_empty(), "{args:?} printed a token");
        assert!(!output.stderr.is_empty(), "{args:?} gave no reason");
    }
}

#[test]
fn help_does_not_show_the_secret() {
    let output = Command::new(env!("CARGO_BIN_EXE_eventsync-token"))
        .arg("--help")
        .env("EVENTSYNC_AUTH_SECRET", "hunter2")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("--secret"));
    assert!(!help.contains("hunter2"));
}
