//! The template site the Chromium-path tests record: fixtures/template/ and livekit-client.

use std::path::Path;

/// Serves fixtures/template/ at /template/, livekit-client's UMD build, and an HTTP 500 page.
pub async fn pages() -> String {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let umd = root.join("target/peers-node/node_modules/livekit-client/dist/livekit-client.umd.js");
    let dir = root.join("fixtures/template");
    let app = axum::Router::new()
        .route(
            "/livekit-client.umd.js",
            axum::routing::get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/javascript")],
                    std::fs::read(&umd).expect("livekit-client (make test installs it)"),
                )
            }),
        )
        .route(
            "/template/{page}",
            axum::routing::get(move |axum::extract::Path(page): axum::extract::Path<String>| async move {
                match std::fs::read(dir.join(&page)) {
                    Ok(b) => ([(header::CONTENT_TYPE, "text/html")], b).into_response(),
                    Err(_) => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route("/status/500", axum::routing::get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}
