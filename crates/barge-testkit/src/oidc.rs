//! A test OpenID Connect issuer on a loopback port: real keys (RSA 2048 and EC P-256, made by
//! the `openssl` CLI), its discovery document and JWKS, tokens it signs (RS256, ES256), key
//! rotation, and the authorization-code flow with PKCE for one test user: `/authorize`
//! approves at once and redirects back with a code, `/token` checks the code, the redirect
//! URI and the PKCE verifier (RFC 7636, S256) and answers an ID token with the nonce.
//! It runs on a thread of its own (so a test may block) until dropped.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// A signing key: its private half for tokens, its public half as a JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// The public key as PEM (for forging an HS256 token with it).
    pub public_pem: String,
    jwk: Value,
}

impl SigningKey {
    /// A new RSA 2048 key (RS256).
    pub fn rsa(kid: &str) -> SigningKey {
        let dir = tempfile::tempdir().expect("a temp dir");
        let private = dir.path().join("rsa.pem");
        // PKCS#1, which jsonwebtoken signs with (ring's RsaKeyPair::from_der).
        openssl(&["genrsa", "-traditional", "-out", path(&private), "2048"]);
        let modulus = openssl(&["rsa", "-in", path(&private), "-noout", "-modulus"]);
        let modulus = String::from_utf8(modulus).unwrap();
        let modulus = hex(modulus.trim().trim_start_matches("Modulus="));
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(&std::fs::read(&private).unwrap()).unwrap(),
            public_pem: String::from_utf8(openssl(&["rsa", "-in", path(&private), "-pubout"])).unwrap(),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                        "n": B64.encode(modulus), "e": B64.encode([1u8, 0, 1])}),
        }
    }

    /// A new EC P-256 key (ES256).
    pub fn ec(kid: &str) -> SigningKey {
        let dir = tempfile::tempdir().expect("a temp dir");
        let private = dir.path().join("ec.pem");
        // PKCS#8, which jsonwebtoken signs with (ring's EcdsaKeyPair::from_pkcs8).
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            path(&private),
        ]);
        let der = openssl(&["pkey", "-in", path(&private), "-pubout", "-outform", "DER"]);
        // The SubjectPublicKeyInfo ends with the uncompressed point: 0x04, X, Y.
        let point = &der[der.len() - 65..];
        assert_eq!(point[0], 4, "an uncompressed P-256 point");
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(&std::fs::read(&private).unwrap()).unwrap(),
            public_pem: String::from_utf8(openssl(&["pkey", "-in", path(&private), "-pubout"])).unwrap(),
            jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])}),
        }
    }

    /// `claims` signed with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// `claims` "signed" with HS256 and this key's public PEM as the HMAC secret, its `kid`
    /// in the header: the algorithm-confusion forgery a verifier must refuse.
    pub fn forge_hs256(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(self.public_pem.as_bytes())).unwrap()
    }
}

/// `claims` unsigned: `alg: none` and an empty signature.
pub fn unsigned(claims: &Value) -> String {
    let part = |v: &Value| B64.encode(v.to_string());
    format!("{}.{}.", part(&json!({"alg": "none", "typ": "JWT"})), part(claims))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `openssl ARGS`: its standard output.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn hex(digits: &str) -> Vec<u8> {
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims valid for five minutes, `extra` on top.
fn claims(issuer: &str, audience: &str, subject: &str, extra: Value) -> Value {
    let mut claims = json!({"iss": issuer, "aud": audience, "sub": subject, "iat": now(), "exp": now() + 300});
    if let (Some(all), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        all.extend(extra);
    }
    claims
}

/// A code `/authorize` handed out, waiting for `/token`.
struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
    challenge: String,
}

struct Inner {
    url: String,
    client_id: String,
    published: Vec<SigningKey>,
    jwks_fetches: usize,
    /// Who `/authorize` signs in: the subject and their extra claims.
    user: (String, Value),
    grants: HashMap<String, Grant>,
    /// Codes handed out, and ID tokens issued.
    codes: usize,
    issued: usize,
}

type Shared = Arc<Mutex<Inner>>;

/// The issuer, serving until dropped.
pub struct TestIssuer {
    /// `http://127.0.0.1:PORT`, the `iss` of its tokens.
    pub url: String,
    /// The keys it publishes first: an RSA key `rsa-1` and an EC key `ec-1`.
    pub rsa: SigningKey,
    pub ec: SigningKey,
    inner: Shared,
    /// Stops it when dropped, after it answers the requests it has.
    _runtime: crate::runtime::ServerRuntime,
}

impl TestIssuer {
    /// An issuer whose sign-ins are for the client `client_id` (the audience of its ID
    /// tokens), signing in `subject` with `claims`.
    pub fn start(client_id: &str, subject: &str, claims: Value) -> TestIssuer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (rsa, ec) = (SigningKey::rsa("rsa-1"), SigningKey::ec("ec-1"));
        let inner = Arc::new(Mutex::new(Inner {
            url: url.clone(),
            client_id: client_id.into(),
            published: vec![rsa.clone(), ec.clone()],
            jwks_fetches: 0,
            user: (subject.into(), claims),
            grants: HashMap::new(),
            codes: 0,
            issued: 0,
        }));
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(inner.clone());
        let runtime = crate::runtime::ServerRuntime::start("oidc-issuer");
        runtime.serve_gracefully(listener, app);
        TestIssuer {
            url,
            rsa,
            ec,
            inner,
            _runtime: runtime,
        }
    }

    /// Claims of a token valid for five minutes: this issuer, `audience`, `subject`, and
    /// `extra` on top.
    pub fn claims(&self, audience: &str, subject: &str, extra: Value) -> Value {
        claims(&self.url, audience, subject, extra)
    }

    /// Publishes exactly these keys from now on (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.inner.lock().unwrap().published = keys.iter().map(|k| (*k).clone()).collect();
    }

    /// How often the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.inner.lock().unwrap().jwks_fetches
    }

    /// How many ID tokens `/token` issued.
    pub fn issued(&self) -> usize {
        self.inner.lock().unwrap().issued
    }
}

async fn discovery(State(inner): State<Shared>) -> Response {
    let url = inner.lock().unwrap().url.clone();
    axum::Json(json!({
        "issuer": url,
        "jwks_uri": format!("{url}/jwks"),
        "authorization_endpoint": format!("{url}/authorize"),
        "token_endpoint": format!("{url}/token"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
}

async fn jwks(State(inner): State<Shared>) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.jwks_fetches += 1;
    let keys: Vec<&Value> = inner.published.iter().map(|k| &k.jwk).collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

fn bad_request(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_request", "error_description": why})),
    )
        .into_response()
}

/// Approves the test user at once: back to `redirect_uri` with a code and the `state`.
async fn authorize(State(inner): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = inner.lock().unwrap();
    let param = |name: &str| q.get(name).map(String::as_str);
    if param("client_id") != Some(inner.client_id.as_str()) {
        return bad_request("unknown client_id");
    }
    if param("response_type") != Some("code") || !param("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid")) {
        return bad_request("response_type must be code and scope include openid");
    }
    let (Some(redirect_uri), Some(challenge), Some("S256")) = (
        param("redirect_uri"),
        param("code_challenge"),
        param("code_challenge_method"),
    ) else {
        return bad_request("PKCE (S256) and redirect_uri are required");
    };
    inner.codes += 1;
    let code = format!("code-{}", inner.codes);
    inner.grants.insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.into(),
            nonce: param("nonce").map(str::to_string),
            challenge: challenge.into(),
        },
    );
    let Ok(mut back) = reqwest::Url::parse(redirect_uri) else {
        return bad_request("redirect_uri is not a URL");
    };
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = param("state") {
        back.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(back.as_str()).into_response()
}

/// The code for an ID token, once, for the redirect URI and PKCE verifier it was given for.
async fn token(State(inner): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut inner = inner.lock().unwrap();
    let param = |name: &str| form.get(name).map(String::as_str);
    if param("grant_type") != Some("authorization_code") || param("client_id") != Some(inner.client_id.as_str()) {
        return bad_request("grant_type must be authorization_code, for this client");
    }
    let Some(grant) = param("code").and_then(|c| inner.grants.remove(c)) else {
        return bad_request("unknown or used code");
    };
    if param("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return bad_request("redirect_uri differs from the authorization request's");
    }
    let verifier = param("code_verifier").unwrap_or_default();
    if B64.encode(sha2::Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return bad_request("the code_verifier does not match the code_challenge");
    }
    let (subject, extra) = inner.user.clone();
    let mut claims = claims(&inner.url, &inner.client_id, &subject, extra);
    if let Some(nonce) = grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    let id_token = inner.published[0].sign(&claims);
    inner.issued += 1;
    axum::Json(json!({"access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}
