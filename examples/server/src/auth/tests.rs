//! Tokens, claims, rights and where requests carry tokens.

use super::*;

const NOW: u64 = 1_767_225_600;

fn claims(document: &str, client: &str, rights: Rights, exp: u64) -> Claims {
    Claims {
        document_id: document.into(),
        client_id: client.into(),
        rights,
        exp,
    }
}

fn authority() -> Authority {
    Authority::new("test-secret")
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token whose payload is `payload` (any bytes), correctly signed.
fn signed(authority: &Authority, payload: &[u8]) -> String {
    let payload = b64(payload);
    let mut mac = authority.mac();
    mac.update(payload.as_bytes());
    format!("{payload}.{}", b64(mac.finalize().into_bytes()))
}

#[test]
fn issue_verify_round_trip() {
    let a = authority();
    let c = claims("doc-1", "alice", Rights::Write, NOW + 60);
    let token = a.issue(&c);
    assert_eq!(token.matches('.').count(), 1);
    assert!(!token.contains('='), "no padding: {token}");
    assert!(
        !token.contains('+') && !token.contains('/'),
        "url-safe: {token}"
    );
    assert_eq!(a.verify(&token, "doc-1", NOW).unwrap(), c);
    // A clone verifies too, and the claims part is the documented JSON.
    assert_eq!(a.clone().verify(&token, "doc-1", NOW).unwrap(), c);
    let json = URL_SAFE_NO_PAD
        .decode(token.split_once('.').unwrap().0)
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"documentId": "doc-1", "clientId": "alice", "rights": "write", "exp": NOW + 60})
    );
}

#[test]
fn tampered_claims_are_refused() {
    let a = authority();
    let token = a.issue(&claims("doc-1", "alice", Rights::Read, NOW + 60));
    let (_, signature) = token.split_once('.').unwrap();
    let forged =
        b64(serde_json::to_vec(&claims("doc-1", "alice", Rights::Write, NOW + 60)).unwrap());
    let err = a
        .verify(&format!("{forged}.{signature}"), "doc-1", NOW)
        .unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Unauthorized);

    // Swapping the claims of two genuine tokens does not work either.
    let other = a.issue(&claims("doc-2", "bob", Rights::Write, NOW + 60));
    let mixed = format!(
        "{}.{}",
        other.split_once('.').unwrap().0,
        token.split_once('.').unwrap().1
    );
    assert!(matches!(
        a.verify(&mixed, "doc-2", NOW),
        Err(AuthError::BadSignature)
    ));
}

#[test]
fn tampered_signature_is_refused() {
    let a = authority();
    let token = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
    let (payload, signature) = token.split_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
    raw[0] ^= 1;
    let flipped = format!("{payload}.{}", b64(&raw));
    assert!(matches!(
        a.verify(&flipped, "doc-1", NOW),
        Err(AuthError::BadSignature)
    ));
    // A truncated signature (valid base64, too short) is a bad signature too.
    let short = format!("{payload}.{}", b64(&raw[..16]));
    assert!(matches!(
        a.verify(&short, "doc-1", NOW),
        Err(AuthError::BadSignature)
    ));
}

#[test]
fn wrong_secret_is_refused() {
    let token =
        Authority::new("other-secret").issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
    assert!(matches!(
        authority().verify(&token, "doc-1", NOW),
        Err(AuthError::BadSignature)
    ));
}

#[test]
fn expiry_is_refused_from_the_exp_second_on() {
    let a = authority();
    let token = a.issue(&claims("doc-1", "alice", Rights::Write, NOW));
    assert!(a.verify(&token, "doc-1", NOW - 1).is_ok());
    let at = a.verify(&token, "doc-1", NOW).unwrap_err();
    assert!(
        matches!(at, AuthError::Expired { exp } if exp == NOW),
        "{at:?}"
    );
    assert_eq!(at.code(), ErrorCode::Unauthorized);
    assert!(matches!(
        a.verify(&token, "doc-1", NOW + 1),
        Err(AuthError::Expired { exp }) if exp == NOW
    ));
    // exp 0 is always expired; u64::MAX never is.
    let zero = a.issue(&claims("doc-1", "alice", Rights::Read, 0));
    assert!(matches!(
        a.verify(&zero, "doc-1", 0),
        Err(AuthError::Expired { exp: 0 })
    ));
    let forever = a.issue(&claims("doc-1", "alice", Rights::Read, u64::MAX));
    assert!(a.verify(&forever, "doc-1", u64::MAX - 1).is_ok());
}

#[test]
fn wrong_document_is_forbidden() {
    let a = authority();
    let token = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
    let err = a.verify(&token, "doc-2", NOW).unwrap_err();
    assert!(
        matches!(&err, AuthError::WrongDocument { token_document } if token_document == "doc-1"),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::Forbidden);
    // Ids compare byte for byte: case matters and there is no prefix matching.
    assert!(a.verify(&token, "DOC-1", NOW).is_err());
    assert!(a.verify(&token, "doc-10", NOW).is_err());
    assert!(a.verify(&token, "*", NOW).is_err());
}

#[test]
fn star_covers_every_document() {
    let a = authority();
    let token = a.issue(&claims("*", "alice", Rights::Read, NOW + 60));
    for doc in ["doc-1", "board-42", "x", "*"] {
        let got = a.verify(&token, doc, NOW).unwrap();
        assert_eq!(got.document_id, "*");
        assert_eq!(got.client_id, "alice");
    }
    // But not past its expiry.
    assert!(matches!(
        a.verify(&token, "doc-1", NOW + 60),
        Err(AuthError::Expired { .. })
    ));
}

#[test]
fn rights_read_and_write() {
    assert!(Rights::Read.allows(Rights::Read));
    assert!(!Rights::Read.allows(Rights::Write));
    assert!(Rights::Write.allows(Rights::Read));
    assert!(Rights::Write.allows(Rights::Write));
    assert!(!Rights::Read.can_write());
    assert_eq!(serde_json::to_string(&Rights::Read).unwrap(), "\"read\"");
    assert_eq!(serde_json::to_string(&Rights::Write).unwrap(), "\"write\"");
    assert!(serde_json::from_str::<Rights>("\"Write\"").is_err());
    assert!(serde_json::from_str::<Rights>("\"admin\"").is_err());

    let a = authority();
    let read = a.issue(&claims("doc-1", "alice", Rights::Read, NOW + 60));
    let write = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
    let read_access = authorize(Some(&a), Some(&read), "doc-1", NOW).unwrap();
    assert_eq!(read_access.rights, Rights::Read);
    assert!(!read_access.can_write());
    let err = read_access.require_write("doc-1").unwrap_err();
    assert!(matches!(err, AuthError::ReadOnly { ref document_id } if document_id == "doc-1"));
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert_eq!(
        err.to_string(),
        "token grants read-only access to doc-1",
        "the message of PROTOCOL.md 10.3"
    );
    let write_access = authorize(Some(&a), Some(&write), "doc-1", NOW).unwrap();
    assert!(write_access.can_write());
    assert!(write_access.require_write("doc-1").is_ok());
}

#[test]
fn malformed_tokens() {
    let a = authority();
    let good = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
    let (payload, signature) = good.split_once('.').unwrap();
    let cases = [
        String::new(),
        ".".into(),
        "no-dot-at-all".into(),
        payload.to_owned(),
        format!("{payload}."),
        format!(".{signature}"),
        format!("{payload}.{signature}.extra"),
        format!("{payload}..{signature}"),
        format!("{payload}.{signature}="),         // padding
        format!("{payload}=.{signature}"),         // padding
        format!("{payload}.+{}", &signature[1..]), // not url-safe
        format!("{payload}.{}", &signature[..41]), // impossible base64 length
        format!("{payload}.!!!!"),
        format!("ey@@.{signature}"),
        format!(" {good}"),
    ];
    for token in &cases {
        let err = a.verify(token, "doc-1", NOW).unwrap_err();
        assert!(matches!(err, AuthError::Malformed), "{token:?}: {err:?}");
        assert_eq!(err.code(), ErrorCode::Unauthorized);
    }
    assert!(matches!(
        a.verify("", "doc-1", NOW),
        Err(AuthError::Malformed)
    ));
    assert!(matches!(
        a.verify("abc", "doc-1", NOW),
        Err(AuthError::Malformed)
    ));
    assert!(matches!(
        a.verify(&format!("{payload}.!!!!"), "doc-1", NOW),
        Err(AuthError::Malformed)
    ));

    // Correctly signed payloads that are not valid claims are malformed (not a panic).
    for payload in [
        &b"not json"[..],
        b"",
        b"[]",
        b"{}",
        br#"{"documentId":"doc-1","clientId":"alice","rights":"write"}"#,
        br#"{"documentId":"doc-1","clientId":"alice","rights":"admin","exp":1}"#,
        br#"{"documentId":"doc-1","clientId":"alice","rights":"write","exp":-1}"#,
        br#"{"documentId":"doc-1","clientId":"alice","rights":"write","exp":"9999999999"}"#,
        br#"{"documentId":"doc-1","clientId":"","rights":"write","exp":9999999999}"#,
        br#"{"documentId":"doc-1","clientId":"server","rights":"write","exp":9999999999}"#,
        br#"{"documentId":"a/b","clientId":"alice","rights":"write","exp":9999999999}"#,
        b"\xff\xfe",
    ] {
        let token = signed(&a, payload);
        let err = a.verify(&token, "doc-1", NOW).unwrap_err();
        assert!(matches!(err, AuthError::Malformed), "{payload:?}: {err:?}");
    }
    // Unknown claim members are ignored (section 1), so tokens can grow fields.
    let extra = signed(
        &a,
        br#"{"documentId":"doc-1","clientId":"alice","rights":"read","exp":9999999999,"iat":1}"#,
    );
    assert_eq!(a.verify(&extra, "doc-1", NOW).unwrap().rights, Rights::Read);
}

#[test]
fn debug_does_not_print_the_secret() {
    let a = Authority::new("hunter2-very-secret");
    let text = format!("{a:?} {a:#?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("Authority"));
}

#[test]
fn error_codes() {
    assert_eq!(AuthError::Missing.code(), ErrorCode::Unauthorized);
    assert_eq!(AuthError::Malformed.code(), ErrorCode::Unauthorized);
    assert_eq!(AuthError::BadSignature.code(), ErrorCode::Unauthorized);
    assert_eq!(
        AuthError::Expired { exp: 1 }.code(),
        ErrorCode::Unauthorized
    );
    let wrong = AuthError::WrongDocument {
        token_document: "d".into(),
    };
    assert_eq!(wrong.code(), ErrorCode::Forbidden);
    assert_eq!(AuthError::ReservedClient.code(), ErrorCode::Forbidden);
    let mismatch = AuthError::ClientMismatch {
        token_client: "bob".into(),
        given: "alice".into(),
    };
    assert_eq!(mismatch.code(), ErrorCode::ClientMismatch);
    assert_eq!(
        mismatch.to_string(),
        "token is for client bob, request says alice"
    );
}

#[test]
fn token_from_header() {
    assert_eq!(
        token_from(Some("Bearer abc.def"), None).as_deref(),
        Some("abc.def")
    );
    assert_eq!(
        token_from(Some("bearer abc.def"), None).as_deref(),
        Some("abc.def")
    );
    assert_eq!(
        token_from(Some("BEARER abc.def"), None).as_deref(),
        Some("abc.def")
    );
    assert_eq!(
        token_from(Some("BeArEr abc.def"), None).as_deref(),
        Some("abc.def")
    );
    assert_eq!(
        token_from(Some("  Bearer    abc.def   "), None).as_deref(),
        Some("abc.def")
    );
    assert_eq!(
        token_from(Some("Bearer\tabc.def"), None).as_deref(),
        Some("abc.def")
    );
    for header in [
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "",
        "   ",
        "Basic abc.def",
        "Bearerabc.def",
        "Token abc",
    ] {
        assert_eq!(token_from(Some(header), None), None, "{header:?}");
    }
    // The header wins over the query (12); another scheme falls back to the query.
    assert_eq!(
        token_from(Some("Bearer from-header"), Some("token=from-query")).as_deref(),
        Some("from-header")
    );
    assert_eq!(
        token_from(Some("Basic dXNlcjpwdw=="), Some("token=from-query")).as_deref(),
        Some("from-query")
    );
    assert_eq!(token_from(None, None), None);
}

#[test]
fn token_from_query() {
    assert_eq!(token_from(None, Some("token=X")).as_deref(), Some("X"));
    assert_eq!(token_from(None, Some("?token=X")).as_deref(), Some("X"));
    assert_eq!(
        token_from(None, Some("a=1&token=X&b=2")).as_deref(),
        Some("X")
    );
    assert_eq!(
        token_from(None, Some("a=1&b=2&token=X")).as_deref(),
        Some("X")
    );
    // Percent-encoded (5.3): decoded; `+` is not a space here.
    assert_eq!(
        token_from(None, Some("token=abc%2Edef")).as_deref(),
        Some("abc.def")
    );
    assert_eq!(
        token_from(None, Some("token=abc%2edef")).as_deref(),
        Some("abc.def")
    );
    assert_eq!(token_from(None, Some("token=a+b")).as_deref(), Some("a+b"));
    assert_eq!(
        token_from(None, Some("token=a%zz%2")).as_deref(),
        Some("a%zz%2")
    );
    assert_eq!(token_from(None, Some("token=%ff")), None, "not UTF-8");
    // The value keeps everything after the first `=`.
    assert_eq!(token_from(None, Some("token=a=b")).as_deref(), Some("a=b"));
    // The first non-empty `token` wins; other keys do not match.
    assert_eq!(
        token_from(None, Some("token=&token=Y")).as_deref(),
        Some("Y")
    );
    assert_eq!(
        token_from(None, Some("token=X&token=Y")).as_deref(),
        Some("X")
    );
    for query in [
        "", "?", "token", "token=", "tokens=X", "xtoken=X", "Token=X", "a=1&b=2", "&&",
    ] {
        assert_eq!(token_from(None, Some(query)), None, "{query:?}");
    }
    // A real token goes through the query unchanged.
    let a = authority();
    let t = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
    let got = token_from(None, Some(&format!("after=3&token={t}"))).unwrap();
    assert_eq!(got, t);
    assert!(a.verify(&got, "doc-1", NOW).is_ok());
}

#[test]
fn authorize_without_authority_allows_everything() {
    for token in [None, Some(""), Some("garbage"), Some("a.b")] {
        let access = authorize(None, token, "doc-1", NOW).unwrap();
        assert_eq!(
            access,
            Access {
                client_id: None,
                rights: Rights::Write,
                expires_at: None,
            }
        );
        assert!(access.check_client("alice").is_ok());
        assert!(access.check_client("bob").is_ok());
        assert!(matches!(
            access.check_client("server"),
            Err(AuthError::ReservedClient)
        ));
        assert_eq!(access.origin(), "server");
    }
}

#[test]
fn authorize_with_authority_requires_a_token() {
    let a = authority();
    let err = authorize(Some(&a), None, "doc-1", NOW).unwrap_err();
    assert!(matches!(err, AuthError::Missing));
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert!(matches!(
        authorize(Some(&a), Some("garbage"), "doc-1", NOW),
        Err(AuthError::Malformed)
    ));

    let token = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
    let access = authorize(Some(&a), Some(&token), "doc-1", NOW).unwrap();
    assert_eq!(access.client_id.as_deref(), Some("alice"));
    assert_eq!(access.rights, Rights::Write);
    assert_eq!(access.origin(), "alice");
    assert!(access.check_client("alice").is_ok());
    let err = access.check_client("bob").unwrap_err();
    assert!(matches!(
        &err,
        AuthError::ClientMismatch { token_client, given } if token_client == "alice" && given == "bob"
    ));
    assert_eq!(err.code(), ErrorCode::ClientMismatch);
    // 5.2 order: a token for alice and a hello as server is a mismatch first.
    assert!(matches!(
        access.check_client("server"),
        Err(AuthError::ClientMismatch { .. })
    ));

    assert!(matches!(
        authorize(Some(&a), Some(&token), "doc-2", NOW),
        Err(AuthError::WrongDocument { .. })
    ));
    assert!(matches!(
        authorize(Some(&a), Some(&token), "doc-1", NOW + 60),
        Err(AuthError::Expired { .. })
    ));
    let foreign = Authority::new("x").issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
    assert!(matches!(
        authorize(Some(&a), Some(&foreign), "doc-1", NOW),
        Err(AuthError::BadSignature)
    ));
}

#[test]
fn hello_credentials_name_the_client_and_rights_follow_the_documents_pattern() {
    let a = authority();
    let check = |token: Option<&str>| credentials(Some(&a), token, NOW).map_err(|e| e.code());
    assert_eq!(check(None), Err(ErrorCode::Unauthorized));
    assert_eq!(check(Some("garbage")), Err(ErrorCode::Unauthorized));
    let bob_doc2 = a.issue(&claims("doc-2", "bob", Rights::Read, NOW + 60));
    let (who, bob) = check(Some(&bob_doc2)).unwrap();
    assert_eq!(who.client_id.as_deref(), Some("bob"));
    assert_eq!(who.expires_at, Some((NOW + 60) * 1000));
    let none = rights(bob.as_ref(), "doc-1");
    assert!(!none.read && !none.write);
    let read = rights(bob.as_ref(), "doc-2");
    assert!(read.read && !read.write);
    let everything = a.issue(&claims("*", "bob", Rights::Write, NOW + 60));
    let (_, all) = check(Some(&everything)).unwrap();
    assert!(rights(all.as_ref(), "doc-9").write);
    // A prefix: board-42.* covers the board's documents and nothing else.
    let board = a.issue(&claims("board-42.*", "bob", Rights::Write, NOW + 60));
    let (_, board) = check(Some(&board)).unwrap();
    assert!(rights(board.as_ref(), "board-42.cards").write);
    assert!(rights(board.as_ref(), "board-42.").read);
    assert!(!rights(board.as_ref(), "board-43.cards").read);
    assert!(!rights(board.as_ref(), "board-42").read);
    // Without authentication: anyone may do anything, tokens ignored.
    let (who, none) = credentials(None, Some("x"), NOW).unwrap();
    assert_eq!(who, Credentials::anyone());
    assert!(rights(none.as_ref(), "doc-1").write);
}

#[test]
fn document_patterns() {
    for good in ["doc", "*", "board-42.*", "a*", "x.y_z~-*"] {
        assert_eq!(validate_document_pattern(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "a/b*",
        "**",
        "a*b",
        "a b*",
        &format!("{}*", "x".repeat(128)),
    ] {
        assert!(validate_document_pattern(bad).is_err(), "{bad}");
    }
}

#[test]
fn issued_token_for_server_is_refused() {
    let a = authority();
    let token = a.issue(&claims("doc-1", "server", Rights::Write, NOW + 60));
    assert!(matches!(
        authorize(Some(&a), Some(&token), "doc-1", NOW),
        Err(AuthError::Malformed)
    ));
}
