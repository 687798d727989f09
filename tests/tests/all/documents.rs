//! Documents: the link from an answer is downloaded by the host, without the
//! token, from the document hosts only.

use api_entreprise::DownloadError;
use api_entreprise_tests::{request, runtime, sandbox};

#[tokio::test]
async fn a_document_link_is_downloaded_without_the_token() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let r = runtime
        .call(&request("acoss_attestations_sociales", &["418166096"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = r
        .document
        .as_ref()
        .and_then(|d| d.url.clone())
        .expect("a document link");
    let dir = std::env::temp_dir().join(format!("api-entreprise-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("attestation.pdf");
    let done = runtime.download(&url, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap().starts_with(b"%PDF"));
    assert_eq!(done.bytes, std::fs::metadata(&dest).unwrap().len());
    assert!(!dir.join("attestation.pdf.partial").exists());
    let requests = sandbox.requests();
    let (api_call, file) = (&requests[0], requests.last().unwrap());
    assert!(api_call.headers.iter().any(|(k, _)| k == "authorization"));
    assert!(file.path.starts_with("/__sandbox/files/"), "{}", file.path);
    assert!(
        !file.headers.iter().any(|(k, _)| k == "authorization"),
        "the token went with the document link"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_link_to_another_host_is_refused_without_a_connection() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x.pdf", elsewhere.local_addr().unwrap());
    let err = runtime
        .download(&url, std::path::Path::new("never-written.pdf"))
        .await
        .unwrap_err();
    assert!(matches!(err, DownloadError::NotAllowed(_)), "{err}");
    let accepted = tokio::time::timeout(std::time::Duration::from_millis(200), elsewhere.accept()).await;
    assert!(accepted.is_err(), "a connection reached the other host");
    assert!(!std::path::Path::new("never-written.pdf").exists());
}
