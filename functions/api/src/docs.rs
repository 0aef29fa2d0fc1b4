//! The API's documentation, served with no internet: the OpenAPI document at
//! `/api/openapi.json`, Swagger UI at `/api/docs` (its assets are vendored in the
//! `utoipa-swagger-ui` crate), and Redoc at `/api/redoc` (its standalone bundle is vendored in
//! `assets/redoc/`).

use axum::Router;
use axum::http::header;
use axum::routing::get;
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::SwaggerUi;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Where Swagger UI is served.
pub const SWAGGER_PATH: &str = "/api/docs";
/// Where Redoc is served.
pub const REDOC_PATH: &str = "/api/redoc";
/// Where the vendored Redoc script is served.
pub const REDOC_SCRIPT_PATH: &str = "/api/redoc/redoc.standalone.js";

/// Redoc's standalone bundle (MIT; see `assets/redoc/LICENSE`).
const REDOC_SCRIPT: &str = include_str!("../assets/redoc/redoc.standalone.js");

/// Redoc's page: the document inline (`$spec`), the script from this server.
const REDOC_HTML: &str = r#"<!DOCTYPE html>
<html>
  <head>
    <title>Tessera API</title>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <div id="redoc-container"></div>
    <script src="/api/redoc/redoc.standalone.js"></script>
    <script>
      Redoc.init($spec, $config, document.getElementById("redoc-container"));
    </script>
  </body>
</html>
"#;

/// The documentation routes; they need no credential.
pub fn router() -> Router {
    let document = crate::openapi::document();
    let swagger = SwaggerUi::new(SWAGGER_PATH).url(OPENAPI_PATH, document.clone());
    let redoc = Redoc::with_url(REDOC_PATH, document).custom_html(REDOC_HTML);
    Router::new()
        .merge(swagger)
        .merge(redoc)
        .route(REDOC_SCRIPT_PATH, get(redoc_script))
}

async fn redoc_script() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_SCRIPT,
    )
}
