//! The Lambda wiring: a family's router fed real API Gateway events, as `lambda_http` hands them
//! over, on both backends.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tessera_api::auth::{AuthConfig, AuthService, JwtKeys};
use tessera_api::rate_limit::Rule;
use tessera_core::RandomIds;
use tower::ServiceExt;

use crate::conformance;
use crate::support::{Backend, random_ip, unique};

conformance!(login_limits_count_the_api_gateway_source_ip_not_a_client_header);

/// An API Gateway HTTP API (payload 2.0) event, as Lambda delivers it.
fn http_api_event(path: &str, body: &Value, source_ip: &str, forwarded_for: &str) -> String {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "x-forwarded-for": forwarded_for
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "e2e"
            },
            "requestId": unique("req"),
            "routeKey": "$default",
            "stage": "$default",
            "time": "24/Nov/2026:20:00:00 +0000",
            "timeEpoch": 1795550400000_i64
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    })
    .to_string()
}

async fn login_limits_count_the_api_gateway_source_ip_not_a_client_header(backend: Backend) {
    let keys = JwtKeys::parse(
        "lambda1:lambda-secret-0123456789abcdef0123456",
        "tessera",
        "tessera-api",
    )
    .expect("keys");
    let auth = AuthService::new(
        &backend.ports(),
        Arc::new(backend.clock.clone()),
        Arc::new(RandomIds),
        AuthConfig {
            jwt: keys,
            trust_forwarded_for: false,
        },
    );
    let app = tessera_lambdas::lambda_router(tessera_api::auth::router(auth));
    let gateway_ip = random_ip();
    backend.clock.clear_of_window_end(Rule::LOGIN_PER_IP, 60);
    let call = |source_ip: String, forwarded_for: String| {
        let app = app.clone();
        let body = json!({ "email": format!("{}@example.com", unique("lambda")), "password": "not the right one" });
        let event = http_api_event("/api/auth/login", &body, &source_ip, &forwarded_for);
        async move {
            let request = lambda_http::request::from_str(&event).expect("an API Gateway event");
            let request: Request<Body> = request.map(|body| Body::from(body.to_vec()));
            app.oneshot(request).await.expect("infallible")
        }
    };
    for attempt in 1..=5 {
        let response = call(gateway_ip.clone(), random_ip()).await;
        assert_eq!(response.status(), 401, "attempt {attempt}");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            (5 - attempt).to_string().as_str()
        );
    }
    let sixth = call(gateway_ip.clone(), random_ip()).await;
    assert_eq!(sixth.status(), 429, "a new X-Forwarded-For does not reset the count");
    assert!(sixth.headers().contains_key("retry-after"));
    let elsewhere = call(random_ip(), gateway_ip).await;
    assert_eq!(elsewhere.status(), 401, "another source IP has its own window");
}
