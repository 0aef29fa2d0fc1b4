//! The `auth` family over HTTP on both backends: the session cycle, strict JWT checks, API keys,
//! service keys, rate limits and lockout, and tenant isolation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_api::auth::jwt::Claims;
use tessera_api::auth::{Accepts, AuthError, JwtKeys};
use tessera_api::rate_limit::Rule;
use tessera_core::Principal;
use tessera_store::definitions::accounts_table;
use tessera_store::item::Key;

use crate::conformance;
use crate::support::{
    Backend, TEST_JWT_KID, TEST_JWT_SECRET, TestApp, assert_hidden_from_stranger, client_from, random_ip,
};

conformance!(
    login_me_refresh_and_logout_make_a_full_session_cycle,
    a_reused_refresh_token_revokes_its_whole_family,
    tampered_forged_expired_and_foreign_jwts_are_refused,
    api_keys_are_stored_hashed_scoped_and_revocable,
    service_keys_and_user_credentials_never_cross,
    the_sixth_login_from_one_ip_in_15_minutes_is_refused,
    the_addresses_of_one_ipv6_network_share_its_login_limit,
    five_bad_passwords_lock_the_account_for_15_minutes,
    a_stranger_asking_for_another_tenants_key_gets_404,
    bad_input_answers_400_in_the_platform_format_and_creates_nothing,
);

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login")
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("me")
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/refresh"))
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .expect("refresh")
}

async fn create_key(app: &TestApp, credential: &str, scopes: &[&str]) -> reqwest::Response {
    app.client
        .post(app.url("/api/api-keys"))
        .bearer_auth(credential)
        .json(&json!({ "name": "ci", "scopes": scopes }))
        .send()
        .await
        .expect("create key")
}

async fn list_keys(app: &TestApp, credential: &str) -> Value {
    let response = app.client.get(app.url("/api/api-keys")).bearer_auth(credential).send();
    response.await.expect("list").json().await.expect("json")
}

fn text(value: &Value) -> String {
    value.as_str().expect("string").to_owned()
}

async fn login_me_refresh_and_logout_make_a_full_session_cycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, password, _) = app.signup().await;

    let response = login(&app, &email.to_uppercase(), &password).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.expect("json");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = text(&tokens["access_token"]);

    let response = me(&app, &access).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-ratelimit-remaining"));
    let profile: Value = response.json().await.expect("json");
    assert_eq!(profile["user"]["email"], email.as_str());
    assert_eq!(profile["user"]["role"], "admin");
    assert_eq!(profile["tenant"]["plan"], "free");
    assert_eq!(
        profile["plan"],
        json!({"name": "Free", "tier": "free", "daily_token_limit": 10, "priority": 0})
    );
    assert!(profile["user"].get("password_hash").is_none());

    let response = refresh(&app, &text(&tokens["refresh_token"])).await;
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.expect("json");
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    let access = text(&rotated["access_token"]);
    assert_eq!(me(&app, &access).await.status(), 200);

    let response = app
        .client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 204);
    assert_eq!(me(&app, &access).await.status(), 401, "a logged-out jti is refused");
    assert_eq!(refresh(&app, &text(&rotated["refresh_token"])).await.status(), 401);
    let revoked = app
        .backend
        .items
        .get(&accounts_table(), &jti_key(&access))
        .await
        .expect("get");
    assert!(revoked.is_some(), "the jti is recorded as revoked until it expires");
}

fn jti_key(token: &str) -> Key {
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    Key::new(format!("JTI#{}", claims["jti"].as_str().expect("jti")), "REVOKED")
}

async fn a_reused_refresh_token_revokes_its_whole_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, password, _) = app.signup().await;
    let first: Value = login(&app, &email, &password).await.json().await.expect("json");
    let second: Value = refresh(&app, &text(&first["refresh_token"]))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me(&app, &text(&second["access_token"])).await.status(), 200);

    let reuse = refresh(&app, &text(&first["refresh_token"])).await;
    assert_eq!(reuse.status(), 401);
    let body: Value = reuse.json().await.expect("json");
    assert!(text(&body["detail"]).contains("revoked"), "{body}");

    assert_eq!(
        refresh(&app, &text(&second["refresh_token"])).await.status(),
        401,
        "the family is revoked"
    );
    assert_eq!(
        me(&app, &text(&second["access_token"])).await.status(),
        401,
        "so are its access tokens"
    );
    assert_eq!(refresh(&app, "not-a-token").await.status(), 401);
}

/// A JWT of `header` and `claims`, HMAC-SHA256-signed with `secret` whatever the header says.
fn hand_signed(header: &Value, claims: &Value, secret: &str) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"));
    let signing_input = format!("{}.{}", encode(header), encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

async fn tampered_forged_expired_and_foreign_jwts_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, password, _) = app.signup().await;
    let tokens: Value = login(&app, &email, &password).await.json().await.expect("json");
    let access = text(&tokens["access_token"]);
    let payload = access.split('.').nth(1).expect("payload");
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims");
    let claims_json = serde_json::to_value(&claims).expect("json");
    let now = claims.iat;
    let keys = |secret: &str, iss: &str, aud: &str| {
        JwtKeys::parse(&format!("{TEST_JWT_KID}:{secret}"), iss, aud).expect("keys")
    };
    let signed = |changes: Value| {
        let mut claims = claims_json.clone();
        for (name, value) in changes.as_object().expect("object") {
            claims[name] = value.clone();
        }
        let claims: Claims = serde_json::from_value(claims).expect("claims");
        keys(TEST_JWT_SECRET, &claims.iss, &claims.aud)
            .sign(&claims)
            .expect("sign")
    };
    assert_eq!(me(&app, &access).await.status(), 200);
    assert_eq!(
        me(&app, &signed(json!({}))).await.status(),
        200,
        "a well-formed token passes"
    );

    let unsigned = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": TEST_JWT_KID}).to_string())
    );
    let wrong_key = keys("another-secret-0123456789abcdef0123", "tessera", "tessera-api")
        .sign(&claims)
        .expect("sign");
    let confused = hand_signed(
        &json!({"alg": "RS256", "typ": "JWT", "kid": TEST_JWT_KID}),
        &claims_json,
        TEST_JWT_SECRET,
    );
    let hs512 = hand_signed(
        &json!({"alg": "HS512", "typ": "JWT", "kid": TEST_JWT_KID}),
        &claims_json,
        TEST_JWT_SECRET,
    );
    let other_kid = hand_signed(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "nope"}),
        &claims_json,
        TEST_JWT_SECRET,
    );
    let mut elevated = claims_json.clone();
    elevated["role"] = json!("platform_admin");
    let modified = format!(
        "{}.{}.{}",
        access.split('.').next().expect("header"),
        URL_SAFE_NO_PAD.encode(elevated.to_string()),
        access.split('.').nth(2).expect("signature")
    );
    let refused = [
        ("alg none", unsigned),
        ("HS256 with the wrong key", wrong_key),
        ("RS256 header over an HMAC signature", confused),
        ("HS512", hs512),
        ("unknown kid", other_kid),
        ("modified payload", modified),
        ("future iat", signed(json!({"iat": now + 120}))),
        ("future nbf", signed(json!({"nbf": now + 120}))),
        ("wrong aud", signed(json!({"aud": "someone-else"}))),
        ("wrong iss", signed(json!({"iss": "evil"}))),
        ("expired 31 s ago", signed(json!({"exp": now - 31}))),
        ("not a jwt", "garbage".to_owned()),
    ];
    for (what, token) in refused {
        let response = me(&app, &token).await;
        assert_eq!(response.status(), 401, "{what}");
        let body: Value = response.json().await.expect("json");
        assert!(body["detail"].is_string(), "{what}: {body}");
    }
    assert_eq!(
        me(&app, &signed(json!({"exp": now - 20}))).await.status(),
        200,
        "20 s of skew is forgiven"
    );

    app.backend.clock.advance(time::Duration::seconds(900 + 31));
    assert_eq!(me(&app, &access).await.status(), 401, "expired by the injected clock");
}

async fn api_keys_are_stored_hashed_scoped_and_revocable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.user_token().await;
    let response = create_key(&app, &user, &["admin", "jobs:read"]).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    let key = text(&created["key"]);
    let prefix = text(&created["prefix"]);
    assert!(key.starts_with(&format!("tessera_{prefix}_")), "{key}");
    assert_eq!(created["id"], format!("key_{prefix}"));

    let stored = app
        .backend
        .items
        .get(&accounts_table(), &Key::new(format!("APIKEY#{prefix}"), "APIKEY"))
        .await
        .expect("get")
        .expect("the key item");
    let secret = key.strip_prefix(&format!("tessera_{prefix}_")).expect("secret");
    assert_eq!(stored["secret_hash"], hex_sha256(&key));
    let raw = serde_json::to_string(&stored).expect("json");
    assert!(!raw.contains(secret), "the secret is never stored: {raw}");

    let by_header = app
        .client
        .get(app.url("/api/auth/me"))
        .header("X-Tesserra-Api-Key", &key)
        .send()
        .await
        .expect("me");
    assert_eq!(by_header.status(), 200);
    let profile: Value = by_header.json().await.expect("json");
    assert_eq!(profile["api_key"]["scopes"], json!(["jobs:read", "admin"]));
    assert_eq!(me(&app, &key).await.status(), 200, "as a bearer token too");

    let escalation = create_key(&app, &key, &["jobs:write"]).await;
    assert_eq!(escalation.status(), 403);
    assert!(text(&escalation.json::<Value>().await.expect("json")["detail"]).contains("jobs:write"));
    let narrower: Value = create_key(&app, &key, &["jobs:read"]).await.json().await.expect("json");
    let narrow_key = text(&narrower["key"]);
    assert_eq!(
        create_key(&app, &narrow_key, &["jobs:read"]).await.status(),
        403,
        "no admin scope"
    );

    let listed = list_keys(&app, &user).await;
    assert_eq!(listed["total"], 2);
    let first = &listed["items"][0];
    assert!(
        first.get("key").is_none() && first.get("secret_hash").is_none(),
        "{first}"
    );
    assert!(first["last_used_at"].is_string(), "the last use is recorded: {first}");

    let deleted = app
        .client
        .delete(app.url(&format!("/api/api-keys/{}", created["id"].as_str().expect("id"))))
        .bearer_auth(&user)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    assert_eq!(me(&app, &key).await.status(), 401, "a revoked key is refused");
    let mut forged = key.clone();
    forged.pop();
    forged.push(if key.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(me(&app, &forged).await.status(), 401);
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

async fn service_keys_and_user_credentials_never_cross(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let service = app.auth.create_service_key("gpu-worker").await.expect("service key");
    assert!(service.key.starts_with("tessera_svc_"));
    let principal = app
        .auth
        .authenticate(&service.key, Accepts::Services)
        .await
        .expect("service");
    assert_eq!(
        principal,
        Principal::Service {
            name: "gpu-worker".into()
        }
    );

    let response = me(&app, &service.key).await;
    assert_eq!(response.status(), 401, "a service key is refused on user routes");

    let user = app.user_token().await;
    let key: Value = create_key(&app, &user, &["jobs:read"])
        .await
        .json()
        .await
        .expect("json");
    for credential in [user, text(&key["key"])] {
        let refused = app.auth.authenticate(&credential, Accepts::Services).await;
        assert!(matches!(refused, Err(AuthError::Unauthenticated(_))), "{refused:?}");
    }
    let mut forged = service.key.clone();
    forged.push('x');
    assert!(app.auth.authenticate(&forged, Accepts::Services).await.is_err());

    let internal = internal_route(&app).await;
    let call = |credential: String| {
        let request = app
            .client
            .get(format!("{internal}/api/internal/whoami"))
            .bearer_auth(credential);
        async move { request.send().await.expect("internal") }
    };
    let answered = call(service.key.clone()).await;
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.text().await.expect("body"), "gpu-worker");
    for credential in [app.user_token().await, text(&key["key"]), forged] {
        assert_eq!(call(credential).await.status(), 401);
    }
}

/// A route behind the shared auth layer configured for services, as `/api/internal/*` uses it;
/// answers the calling service's name. Returns the base URL.
async fn internal_route(app: &TestApp) -> String {
    use axum::middleware::from_fn_with_state;
    use tessera_api::auth::Guard;
    use tessera_api::auth::layer::{authenticate, platform_style};
    let guard = Guard {
        service: app.auth.clone(),
        accepts: Accepts::Services,
        render: platform_style,
    };
    let whoami = |axum::Extension(principal): axum::Extension<Principal>| async move {
        match principal {
            Principal::Service { name } => name,
            other => format!("not a service: {other:?}"),
        }
    };
    let router = axum::Router::new()
        .route("/api/internal/whoami", axum::routing::get(whoami))
        .layer(from_fn_with_state(guard, authenticate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

async fn the_sixth_login_from_one_ip_in_15_minutes_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, password, _) = app.signup().await;
    app.backend.clock.clear_of_window_end(Rule::LOGIN_PER_IP, 60);
    for attempt in 1..=5 {
        let response = login(&app, &email, &password).await;
        assert_eq!(response.status(), 200, "attempt {attempt}");
        let remaining = response.headers()["x-ratelimit-remaining"]
            .to_str()
            .expect("header")
            .to_owned();
        assert_eq!(remaining, (5 - attempt).to_string());
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
    }
    let sixth = login(&app, &email, &password).await;
    assert_eq!(sixth.status(), 429);
    let retry_after: i64 = sixth.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert!(sixth.headers().contains_key("x-ratelimit-reset"));
    let body: Value = sixth.json().await.expect("json");
    assert!(body["detail"].is_string());

    let elsewhere = client_from(&random_ip());
    let other_ip = elsewhere
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login");
    assert_eq!(other_ip.status(), 200, "the limit is per IP");
}

/// A random /64 in fd00::/8 (unique local addresses), as its first four groups.
fn random_ipv6_network() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!(
        "fd{:02x}:{:x}:{:x}:{:x}",
        rng.random::<u8>(),
        rng.random::<u16>(),
        rng.random::<u16>(),
        rng.random::<u16>()
    )
}

async fn the_addresses_of_one_ipv6_network_share_its_login_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, password, _) = app.signup().await;
    let network = random_ipv6_network();
    app.backend.clock.clear_of_window_end(Rule::LOGIN_PER_IP, 60);
    let login_from = |ip: String| {
        let request = client_from(&ip)
            .post(app.url("/api/auth/login"))
            .json(&json!({ "email": email, "password": password }));
        async move { request.send().await.expect("login").status() }
    };
    for host in 1..=5 {
        let status = login_from(format!("{network}::{host:x}")).await;
        assert_eq!(status, 200, "address {host} of the network");
    }
    let sixth = login_from(format!("{network}:ffff:ffff:ffff:ffff")).await;
    assert_eq!(sixth, 429, "a sixth address of the same /64 is the same client");
    let other_network = login_from(format!("{}::1", random_ipv6_network())).await;
    assert_eq!(other_network, 200, "another /64 is another client");
}

async fn five_bad_passwords_lock_the_account_for_15_minutes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, password, _) = app.signup().await;
    let from_anywhere = || client_from(&random_ip());
    let attempt = |password: String| {
        let email = email.clone();
        let client = from_anywhere();
        let url = app.url("/api/auth/login");
        async move {
            client
                .post(url)
                .json(&json!({ "email": email, "password": password }))
                .send()
                .await
                .expect("login")
        }
    };
    let unknown = attempt("wrong password here".into()).await;
    let unknown_body = unknown.text().await.expect("body");
    for _ in 1..5 {
        assert_eq!(attempt("wrong password here".into()).await.status(), 401);
    }
    let nobody = from_anywhere()
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": format!("nobody-{email}"), "password": password }))
        .send()
        .await
        .expect("login");
    assert_eq!(nobody.status(), 401);
    assert_eq!(
        nobody.text().await.expect("body"),
        unknown_body,
        "wrong e-mail and wrong password look alike"
    );

    let locked = attempt(password.clone()).await;
    assert_eq!(locked.status(), 429, "the right password is refused while locked");
    assert!(locked.headers().contains_key("retry-after"));

    app.backend
        .clock
        .advance(time::Duration::minutes(15) + time::Duration::seconds(1));
    assert_eq!(
        attempt(password.clone()).await.status(),
        200,
        "the lock ends after 15 minutes"
    );
    for _ in 1..5 {
        assert_eq!(attempt("wrong password here".into()).await.status(), 401);
    }
    assert_eq!(attempt(password).await.status(), 200, "a success reset the count");
}

async fn a_stranger_asking_for_another_tenants_key_gets_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.user_token().await;
    let stranger = app.user_token().await;
    let key: Value = create_key(&app, &owner, &["jobs:read"])
        .await
        .json()
        .await
        .expect("json");
    let id = text(&key["id"]);
    assert_hidden_from_stranger(
        &app,
        &stranger,
        Method::DELETE,
        &format!("/api/api-keys/{id}"),
        "/api/api-keys/key_000000000000",
    )
    .await;
    assert_eq!(
        me(&app, &text(&key["key"])).await.status(),
        200,
        "the owner's key still works"
    );
    let listed = list_keys(&app, &stranger).await;
    assert_eq!(listed["total"], 0, "{listed}");
}

async fn bad_input_answers_400_in_the_platform_format_and_creates_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, _, _) = app.signup().await;
    let post = |path: &'static str, body: Value| {
        let request = app.client.post(app.url(path)).json(&body);
        async move { request.send().await.expect("request") }
    };
    let cases = [
        (
            "/api/auth/signup",
            json!({"email": "not-an-email", "password": "long enough pass", "name": "x"}),
        ),
        (
            "/api/auth/signup",
            json!({"email": "ok@example.com", "password": "short", "name": "x"}),
        ),
        (
            "/api/auth/signup",
            json!({"email": "ok@example.com", "password": "long enough pass", "name": ""}),
        ),
        ("/api/auth/signup", json!({"email": "ok@example.com"})),
        ("/api/auth/login", json!({"email": 42})),
    ];
    for (path, body) in cases {
        let response = post(path, body.clone()).await;
        assert!(response.status().is_client_error(), "{body}: {}", response.status());
        let answer: Value = response.json().await.expect("json");
        assert!(answer["detail"].is_string(), "{body}: {answer}");
    }
    let duplicate = post(
        "/api/auth/signup",
        json!({"email": email, "password": "another long password", "name": "Twin"}),
    )
    .await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let user = app.user_token().await;
    for scopes in [json!([]), json!(["jobs:delete"]), json!("admin")] {
        let response = app
            .client
            .post(app.url("/api/api-keys"))
            .bearer_auth(&user)
            .json(&json!({"name": "k", "scopes": scopes}))
            .send()
            .await
            .expect("create");
        assert!(response.status().is_client_error(), "{scopes}");
        assert!(response.json::<Value>().await.expect("json")["detail"].is_string());
    }
    let no_credential = app.client.get(app.url("/api/auth/me")).send().await.expect("me");
    assert_eq!(no_credential.status(), 401);
    assert_eq!(no_credential.headers()["www-authenticate"], "Bearer");
}
