//! The HTTP API (`docs/PROTOCOL.md` section 12) as small calls: each returns the status and the
//! JSON body.

use serde_json::Value;

use super::{http, TestServer};

/// Sends a request and reads its answer as JSON; panics when the body is not JSON.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body read");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, body)
}

fn document_url(server: &TestServer, document: &str) -> String {
    server.url(&format!("/api/documents/{document}"))
}

/// `GET /api/documents/{document}`.
pub async fn get_document(server: &TestServer, document: &str) -> (u16, Value) {
    send(http().get(document_url(server, document))).await
}

/// `PUT /api/documents/{document}` with a JSON body.
pub async fn put(server: &TestServer, document: &str, body: &Value) -> (u16, Value) {
    put_raw(server, document, body.to_string().into_bytes()).await
}

/// `PUT /api/documents/{document}` with raw bytes as the body.
pub async fn put_raw(server: &TestServer, document: &str, body: Vec<u8>) -> (u16, Value) {
    send(
        http()
            .put(document_url(server, document))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// `PATCH /api/documents/{document}` with an RFC 6902 patch and the given content type.
pub async fn patch_as(
    server: &TestServer,
    document: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Value) {
    send(
        http()
            .patch(document_url(server, document))
            .header("content-type", content_type)
            .body(body.to_string()),
    )
    .await
}

/// `PATCH /api/documents/{document}` as `application/json-patch+json`.
pub async fn patch(server: &TestServer, document: &str, body: &Value) -> (u16, Value) {
    patch_as(server, document, "application/json-patch+json", body).await
}

/// `DELETE /api/documents/{document}`.
pub async fn delete(server: &TestServer, document: &str) -> (u16, Value) {
    send(http().delete(document_url(server, document))).await
}

/// `GET /api/events/{document}{query}` (`query` with its leading `?`, or empty).
pub async fn events(server: &TestServer, document: &str, query: &str) -> (u16, Value) {
    send(http().get(server.url(&format!("/api/events/{document}{query}")))).await
}

/// `POST /api/sync/{document}` with a StateVector body.
pub async fn sync(server: &TestServer, document: &str, body: &Value) -> (u16, Value) {
    send(
        http()
            .post(server.url(&format!("/api/sync/{document}")))
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

/// A successful write's `sequenceNum`; panics on any other answer.
pub fn written(answer: (u16, Value)) -> u64 {
    let (status, body) = answer;
    assert_eq!(status, 200, "write failed: {body}");
    body["sequenceNum"].as_u64().expect("sequenceNum")
}

/// Asserts an error answer: its status and its ErrorBody's code (and that it has a message).
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "answer: {}", answer.1);
    assert_eq!(answer.1["code"], code, "answer: {}", answer.1);
    assert!(
        answer.1["message"].is_string(),
        "an ErrorBody has a message: {}",
        answer.1
    );
}
