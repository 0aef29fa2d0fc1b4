//! The API's documentation as the dev server serves it: the OpenAPI document covers every route
//! the routers declare (and only those), and both docs pages load their vendored scripts from
//! the server itself, never from the internet.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Backend, TestApp};

/// The routers' source files, whose `.route(...)` calls are the served routes.
const ROUTER_SOURCES: &[&str] = &["functions/api/src"];
/// Routes that are not part of the public document: the dev server's signed-blob route (S3
/// serves signed URLs on AWS).
const UNDOCUMENTED: &[&str] = &["/blobs/{bucket}/{*key}"];

#[tokio::test]
async fn the_openapi_document_is_3_1_and_covers_every_route() {
    let app = TestApp::spawn(Backend::embedded().await).await;
    let response = app.client.get(app.url("/api/openapi.json")).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.expect("json");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.1")),
        "{}",
        document["openapi"]
    );
    let documented = documented_operations(&document);
    let served = served_routes();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "routes served but not documented: {missing:?}");
    assert!(extra.is_empty(), "operations documented but not served: {extra:?}");
    assert!(documented.len() >= 30, "{documented:?}");
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn(Backend::embedded().await).await;
    let document: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    for (method, path) in documented_operations(&document) {
        let concrete = path.replace(['{', '}'], "");
        let request = app.client.request(method.parse().expect("method"), app.url(&concrete));
        let response = request.send().await.expect("send");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path} is not routed: {body}");
        assert!(
            !(status == 404 && body.contains("no such route")),
            "{method} {path} is not routed"
        );
    }
}

#[tokio::test]
async fn swagger_ui_loads_its_vendored_assets_from_the_server() {
    let app = TestApp::spawn(Backend::embedded().await).await;
    let page = fetch_text(&app, "/api/docs/").await;
    assert!(page.contains("swagger-ui-bundle.js"), "{page}");
    assert_no_remote_assets(&page);
    let bundle = fetch_text(&app, "/api/docs/swagger-ui-bundle.js").await;
    assert!(bundle.len() > 100_000, "the bundle is {} bytes", bundle.len());
    let initializer = fetch_text(&app, "/api/docs/swagger-initializer.js").await;
    assert!(initializer.contains("/api/openapi.json"), "{initializer}");
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("get");
    assert!(redirect.status().is_redirection(), "{}", redirect.status());
}

#[tokio::test]
async fn redoc_loads_its_vendored_script_from_the_server() {
    let app = TestApp::spawn(Backend::embedded().await).await;
    let page = fetch_text(&app, "/api/redoc").await;
    assert!(
        page.contains(r#"<script src="/api/redoc/redoc.standalone.js">"#),
        "{page}"
    );
    assert!(page.contains("create_job"), "the document is inline");
    assert_no_remote_assets(&page);
    let response = app
        .client
        .get(app.url("/api/redoc/redoc.standalone.js"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("application/javascript"), "{content_type}");
    let script = response.text().await.expect("text");
    assert!(script.len() > 500_000, "the script is {} bytes", script.len());
    assert!(script.contains("Redoc"), "not Redoc's bundle");
}

async fn fetch_text(app: &TestApp, path: &str) -> String {
    let response = app.client.get(app.url(path)).send().await.expect("get");
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.expect("text")
}

/// A page that works offline names no script or stylesheet on another host.
fn assert_no_remote_assets(page: &str) {
    for attribute in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(
            !page.contains(attribute),
            "the page loads a remote asset ({attribute}): {page}"
        );
    }
}

/// `(METHOD, path)` of every operation of the document.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|method| ["get", "post", "put", "patch", "delete"].contains(&method.as_str()))
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` in the routers' sources.
fn served_routes() -> BTreeSet<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut routes = BTreeSet::new();
    for source in ROUTER_SOURCES {
        for file in rust_files(&root.join(source)) {
            let text = std::fs::read_to_string(&file).expect("read");
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            routes.extend(routes_in(text));
        }
    }
    routes.retain(|(_, path)| !UNDOCUMENTED.contains(&path.as_str()));
    routes
}

fn routes_in(text: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for (start, _) in text.match_indices(".route(") {
        let call = balanced(&text[start + ".route(".len()..]);
        let Some(path) = call
            .trim_start()
            .strip_prefix('"')
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = call.match_indices(&format!("{method}(")).any(|(at, _)| {
                !call[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|before| before.is_alphanumeric() || before == '_')
            });
            if called {
                routes.push((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    routes
}

/// The text up to the parenthesis that closes the one just opened.
fn balanced(text: &str) -> &str {
    let mut depth = 1;
    for (at, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..at];
                }
            }
            _ => {}
        }
    }
    text
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}
