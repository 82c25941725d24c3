//! The browser app as the server serves it: pages, assets, headers.

use reqwest::Method;

use crate::helpers::{TestApp, error_body};

#[actix_web::test]
async fn pages_and_assets_are_served_with_their_headers() {
    let app = TestApp::spawn().await;
    for page in [
        "/",
        "/login",
        "/inbox",
        "/reset-password",
        "/courses/12",
        "/announcements/new",
    ] {
        let response = app.request(Method::GET, page, None, None).await;
        assert_eq!(response.status(), 200, "{page}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let body = response.text().await.unwrap();
        assert!(body.contains(r#"<script type="module" src="/assets/js/app.js">"#));
    }
    let head = app.request(Method::HEAD, "/login", None, None).await;
    assert_eq!(head.status(), 200);

    let script = app
        .request(Method::GET, "/assets/js/app.js", None, None)
        .await;
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = script.headers()["etag"].to_str().unwrap().to_owned();
    assert!(script.text().await.unwrap().contains("import"));
    let again = app
        .client
        .get(app.url("/assets/js/app.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let style = app
        .request(Method::GET, "/assets/app.css", None, None)
        .await;
    assert_eq!(style.headers()["content-type"], "text/css; charset=utf-8");

    error_body(
        app.request(Method::GET, "/assets/nope.js", None, None)
            .await,
        404,
        "not_found",
    )
    .await;
    error_body(
        app.request(Method::GET, "/assets/../Cargo.toml", None, None)
            .await,
        404,
        "not_found",
    )
    .await;
}
