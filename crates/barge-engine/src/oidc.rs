//! OIDC bearer tokens (`barge serve --oidc-issuer URL --oidc-audience AUD --oidc-rules FILE`,
//! docs/reference/access.md): a JWT an OpenID Connect issuer signed stands for the principal
//! `oidc:<sub>` with the role the first matching rule of the rule file gives its claims.
//!
//! What is verified, per OpenID Connect Core 1.0 §3.1.3.7 and RFC 7519: the signature, with a
//! key of the issuer's JWKS (found through its discovery document, OpenID Connect Discovery
//! 1.0 §4, whose `issuer` must be the configured one) chosen by the token's `kid`; only RS256
//! and ES256, and only with a key of that type (no `none`, no HMAC with a public key);
//! `iss` is the issuer, `aud` holds the audience, `exp` is in the future and `nbf` in the
//! past, both within [`LEEWAY`]. `exp`, `iss`, `aud` and `sub` are required, and `exp`,
//! `nbf` and `iat` must be numbers.
//!
//! The keys are cached. A token whose `kid` the cache does not know (the issuer rotated its
//! keys) fetches them again, at most once per cooldown (`BARGE_OIDC_JWKS_COOLDOWN`, 10 s) and
//! one fetch at a time, each within [`FETCH_TIMEOUT`] and [`MAX_DOCUMENT`] bytes: tokens with
//! made-up `kid`s cannot make barge hammer the issuer. Keys older than [`MAX_KEY_AGE`] are
//! fetched again on their next use, so that a key the issuer dropped stops working.
//!
//! The crate: `jsonwebtoken` 9, whose signatures are ring's, the one crypto library of the
//! workspace (rustls' provider); its later versions offer only aws-lc-rs or RustCrypto.

use barge_core::ErrorClass;
use barge_core::authz::{Principal, Role};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How far `exp` and `nbf` may be off: clocks of issuer and barge differ a little.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// How long a fetch of the discovery document, the JWKS or a token exchange may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document, JWKS or token answer barge reads.
pub const MAX_DOCUMENT: usize = 1 << 20;
/// Keys this old are fetched again before they are used.
const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// What the web UI's sign-in asks for without BARGE_OIDC_SCOPES (an issuer that sends
/// groups only for a `groups` scope, as Dex does, needs it added).
const DEFAULT_SCOPES: &str = "openid profile email";
/// The least time between two fetches for an unknown `kid`, without BARGE_OIDC_JWKS_COOLDOWN.
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(10);

/// Why a presented JWT stands for nobody, or cannot be checked now.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The token is not valid (401).
    #[error("the OIDC token is not valid: {0}")]
    Invalid(String),
    /// The token is valid but no rule maps its claims to a role (403).
    #[error("no --oidc-rules rule matches the claims of OIDC subject {0:?}")]
    NoRule(String),
    /// The issuer cannot be asked for its keys now (503).
    #[error("cannot reach the OIDC issuer: {0}")]
    Unavailable(String),
}

impl OidcError {
    pub fn class(&self) -> ErrorClass {
        match self {
            OidcError::Invalid(_) => ErrorClass::Auth,
            OidcError::NoRule(_) => ErrorClass::Forbidden,
            OidcError::Unavailable(_) => ErrorClass::Transient,
        }
    }
}

/// The rule file: which claims give which role, first match wins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawRule")]
struct Rule {
    claims: BTreeMap<String, Vec<String>>,
    role: Role,
    project: Option<String>,
    stages: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Claim name → the values it may have (one, or a list: any of them).
    #[serde(rename = "match", default)]
    claims: BTreeMap<String, OneOrMany>,
    role: Role,
    project: Option<String>,
    stages: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Rule, String> {
        // The same checks as a token's (stages limit promoters only), at start.
        Principal::oidc("rule", raw.role, raw.project.clone(), raw.stages.clone()).map_err(|e| e.to_string())?;
        let claims = raw
            .claims
            .into_iter()
            .map(|(claim, values)| match values {
                OneOrMany::One(v) => (claim, vec![v]),
                OneOrMany::Many(vs) => (claim, vs),
            })
            .collect();
        Ok(Rule {
            claims,
            role: raw.role,
            project: raw.project,
            stages: raw.stages,
        })
    }
}

impl Rules {
    /// The rule file at `path`; a bad one is an error naming `file:line:column`.
    pub fn load(path: &Path) -> Result<Rules, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Rules::parse(&text).map_err(|e| format!("{}:{e}", path.display()))
    }

    /// Rules from YAML; an error starts with `line:column: `.
    pub fn parse(text: &str) -> Result<Rules, String> {
        yaml_serde::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            // The message without yaml_serde's own " at line L column C".
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            format!("{line}:{column}: {message}")
        })
    }

    /// The principal of the first rule whose every claim matches, if any.
    fn principal(&self, subject: &str, claims: &Map<String, Value>) -> Option<Principal> {
        let rule = self.rules.iter().find(|rule| {
            rule.claims
                .iter()
                .all(|(name, wanted)| claims.get(name).is_some_and(|have| has_any(have, wanted)))
        })?;
        Principal::oidc(subject, rule.role, rule.project.clone(), rule.stages.clone()).ok()
    }
}

/// Whether a claim is one of `wanted`, or, a list, holds one of them. A number or boolean
/// is compared as its JSON text (`email_verified: "true"`).
fn has_any(have: &Value, wanted: &[String]) -> bool {
    let is = |v: &Value| match v {
        Value::String(s) => wanted.contains(s),
        Value::Bool(_) | Value::Number(_) => wanted.contains(&v.to_string()),
        _ => false,
    };
    match have {
        Value::Array(items) => items.iter().any(is),
        other => is(other),
    }
}

/// What the issuer's discovery document says (OpenID Connect Discovery 1.0 §3).
#[derive(Clone, Debug, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}

/// The claims barge reads itself, typed so that a string where a number belongs refuses
/// the token (jsonwebtoken 9 skips an `nbf` or `exp` it cannot parse).
#[derive(Deserialize)]
struct Registered {
    sub: String,
    #[serde(rename = "exp")]
    _exp: u64,
    #[serde(rename = "nbf")]
    _nbf: Option<u64>,
    #[serde(rename = "iat")]
    _iat: Option<u64>,
}

/// A JWK as RFC 7517/7518 spell the two kinds barge accepts.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct Cache {
    metadata: Option<Metadata>,
    keys: Vec<Key>,
    fetched: Option<Instant>,
}

/// The verifier: the issuer, the audience, the rules and the cached keys.
pub struct Oidc {
    pub issuer: String,
    /// Also the client id of the web UI's sign-in.
    pub audience: String,
    /// The client secret of the web UI's sign-in (`None`: a public client, PKCE only).
    client_secret: Option<String>,
    /// The scopes the web UI's sign-in asks for.
    scopes: String,
    rules: Rules,
    cooldown: Duration,
    http: reqwest::Client,
    /// One fetch at a time: requests that need the keys wait for the one fetching them.
    cache: tokio::sync::Mutex<Cache>,
}

impl Oidc {
    /// A verifier for `issuer`'s tokens meant for `audience`; nothing is fetched yet.
    pub fn new(issuer: &str, audience: &str, rules: Rules, client_secret: Option<String>) -> Result<Oidc, String> {
        let cooldown = match std::env::var("BARGE_OIDC_JWKS_COOLDOWN") {
            Ok(d) => barge_core::duration::parse_go_duration(&d)
                .map_err(|_| format!("BARGE_OIDC_JWKS_COOLDOWN: {d:?} is not a duration (e.g. 10s)"))?,
            Err(_) => DEFAULT_COOLDOWN,
        };
        Ok(Oidc {
            issuer: issuer.trim_end_matches('/').to_string(),
            audience: audience.to_string(),
            client_secret,
            scopes: std::env::var("BARGE_OIDC_SCOPES").unwrap_or_else(|_| DEFAULT_SCOPES.into()),
            rules,
            cooldown,
            http: http_client(),
            cache: tokio::sync::Mutex::default(),
        })
    }

    /// The principal a JWT stands for, or why none.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, OidcError> {
        let (subject, claims) = self.verify(token, None).await?;
        self.rules
            .principal(&subject, &claims)
            .ok_or(OidcError::NoRule(subject))
    }

    /// Verifies a JWT (and, for an ID token of a sign-in, its `nonce`): its subject and claims.
    pub async fn verify(&self, token: &str, nonce: Option<&str>) -> Result<(String, Map<String, Value>), OidcError> {
        let invalid = |why: String| OidcError::Invalid(why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("not a signed JWT: {e}")))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid(format!("{:?} is not RS256 or ES256", header.alg)));
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY.as_secs();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| invalid(e.to_string()))?
            .claims;
        let registered: Registered =
            serde_json::from_value(Value::Object(claims.clone())).map_err(|e| invalid(format!("its claims: {e}")))?;
        if let Some(nonce) = nonce
            && claims.get("nonce").and_then(Value::as_str) != Some(nonce)
        {
            return Err(invalid("its nonce is not the sign-in's".into()));
        }
        Ok((registered.sub, claims))
    }

    /// The discovery document (fetched when not cached yet).
    pub async fn metadata(&self) -> Result<Metadata, OidcError> {
        let mut cache = self.cache.lock().await;
        // Within the cooldown of a failed fetch, sign-ins do not ask again.
        if cache.metadata.is_none() && cache.fetched.is_none_or(|at| at.elapsed() >= self.cooldown) {
            self.refresh(&mut cache).await?;
        }
        cache
            .metadata
            .clone()
            .ok_or_else(|| OidcError::Unavailable("no discovery document".into()))
    }

    /// The key for `kid` and `alg`, fetching the keys when they are old, or when the `kid`
    /// is unknown and the last fetch is older than the cooldown.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, OidcError> {
        let mut cache = self.cache.lock().await;
        let age = cache.fetched.map(|at| at.elapsed());
        if age.is_none_or(|age| age >= MAX_KEY_AGE) {
            self.refresh(&mut cache).await?;
        }
        let find = |cache: &Cache| {
            let matching: Vec<&Key> = cache
                .keys
                .iter()
                .filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
                .collect();
            // Without a `kid`, only an issuer with one key of the kind leaves no doubt.
            match matching.as_slice() {
                [one] => Some(one.key.clone()),
                _ => None,
            }
        };
        if let Some(key) = find(&cache) {
            return Ok(key);
        }
        if cache.fetched.is_none_or(|at| at.elapsed() >= self.cooldown) {
            self.refresh(&mut cache).await?;
            if let Some(key) = find(&cache) {
                return Ok(key);
            }
        }
        Err(OidcError::Invalid(format!(
            "the issuer has no {alg:?} key {}",
            kid.map_or("(and the token names none)".to_string(), |k| format!("{k:?}"))
        )))
    }

    /// Fetches the discovery document and the JWKS into the cache. A failure leaves the
    /// cache as it was, but counts as a fetch for the cooldown.
    async fn refresh(&self, cache: &mut Cache) -> Result<(), OidcError> {
        cache.fetched = Some(Instant::now());
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer);
        let metadata: Metadata = fetch_json(self.http.get(&discovery)).await?;
        // OpenID Connect Discovery 1.0 §4.3: the document is the issuer's own.
        if metadata.issuer.trim_end_matches('/') != self.issuer {
            return Err(OidcError::Unavailable(format!(
                "{discovery} names the issuer {:?}, not {:?}",
                metadata.issuer, self.issuer
            )));
        }
        let set: JwkSet = fetch_json(self.http.get(&metadata.jwks_uri)).await?;
        cache.keys = set.keys.iter().filter_map(key_of).collect();
        cache.metadata = Some(metadata);
        tracing::info!(issuer = %self.issuer, keys = cache.keys.len(), "fetched the OIDC issuer's keys");
        Ok(())
    }

    /// Where a browser signs in: the issuer's authorization endpoint with an
    /// authorization-code request (OpenID Connect Core 1.0 §3.1.2.1) carrying `state`,
    /// `nonce` and the PKCE challenge of `verifier` (RFC 7636, S256).
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, OidcError> {
        let metadata = self.metadata().await?;
        let endpoint = metadata
            .authorization_endpoint
            .ok_or_else(|| OidcError::Unavailable("the issuer names no authorization_endpoint".into()))?;
        let mut url = reqwest::Url::parse(&endpoint)
            .map_err(|e| OidcError::Unavailable(format!("authorization_endpoint {endpoint:?}: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.audience)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges a sign-in's code at the token endpoint (§3.1.3.1) and verifies the ID token
    /// it answers, `nonce` included: the ID token.
    pub async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<String, OidcError> {
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: String,
        }
        let metadata = self.metadata().await?;
        let endpoint = metadata
            .token_endpoint
            .ok_or_else(|| OidcError::Unavailable("the issuer names no token_endpoint".into()))?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &self.audience),
            ("code_verifier", verifier),
        ];
        // client_secret_post (§9): the secret in the body, never in a URL.
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        let answer: TokenAnswer = fetch_json(self.http.post(&endpoint).form(&form)).await?;
        self.verify(&answer.id_token, Some(nonce)).await?;
        Ok(answer.id_token)
    }
}

/// The PKCE challenge of a verifier: BASE64URL(SHA256(verifier)) (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A JWK barge can verify with: RSA for RS256, P-256 for ES256, meant for signatures.
fn key_of(jwk: &Jwk) -> Option<Key> {
    if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
        ),
        ("EC", Some("P-256")) => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?,
        ),
        _ => return None,
    };
    let named = match alg {
        Algorithm::RS256 => "RS256",
        _ => "ES256",
    };
    if jwk.alg.as_deref().is_some_and(|a| a != named) {
        return None;
    }
    Some(Key {
        kid: jwk.kid.clone(),
        alg,
        key,
    })
}

/// An HTTP client on the workspace's one rustls provider, every request within
/// [`FETCH_TIMEOUT`], no redirects (the issuer's URLs are its own).
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("barge/", env!("CARGO_PKG_VERSION")))
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Sends the request and reads its JSON answer, at most [`MAX_DOCUMENT`] bytes.
async fn fetch_json<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, OidcError> {
    let unavailable = |why: String| OidcError::Unavailable(why);
    let mut response = request
        .send()
        .await
        .map_err(|e| unavailable(e.without_url().to_string()))?;
    let url = response.url().clone();
    if !response.status().is_success() {
        return Err(unavailable(format!("{url} answered {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unavailable(format!("{url}: {}", e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(unavailable(format!("{url} answered more than {MAX_DOCUMENT} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| unavailable(format!("{url} answered no JSON document barge reads: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: &str = "rules:
  - match: {groups: [platform]}
    role: admin
  - match: {email: alice@example.com, email_verified: \"true\"}
    role: promoter
    project: shop
    stages: [dev]
  - match: {groups: readers}
    role: viewer
";

    #[test]
    fn the_first_rule_whose_every_claim_matches_gives_the_role() {
        let rules = Rules::parse(RULES).unwrap();
        let who = |claims: Value| rules.principal("u1", claims.as_object().unwrap());
        let admin = who(json!({"groups": ["readers", "platform"]})).unwrap();
        assert_eq!((admin.role, admin.actor()), (Role::Admin, "oidc:u1".to_string()));
        let alice = who(json!({"email": "alice@example.com", "email_verified": true})).unwrap();
        assert_eq!(
            (alice.role, alice.project.as_deref(), alice.stages),
            (Role::Promoter, Some("shop"), Some(vec!["dev".to_string()]))
        );
        // Every claim of a rule must match: an unverified address is no match.
        assert!(who(json!({"email": "alice@example.com", "email_verified": false})).is_none());
        assert_eq!(who(json!({"groups": "readers"})).unwrap().role, Role::Viewer);
        assert!(who(json!({"groups": ["other"]})).is_none());
    }

    #[test]
    fn a_bad_rule_file_names_line_and_column() {
        let unknown_role = "rules:\n  - match: {groups: [a]}\n    role: owner\n";
        let e = Rules::parse(unknown_role).unwrap_err();
        assert!(e.starts_with("3:11: "), "{e}");
        assert!(e.contains("owner"), "{e}");
        let typo = "rules:\n  - match: {groups: [a]}\n    role: admin\n    projects: shop\n";
        let e = Rules::parse(typo).unwrap_err();
        assert!(e.starts_with("4:5: ") && e.contains("projects"), "{e}");
        let stages_for_admin = "rules:\n  - role: admin\n    stages: [dev]\n";
        let e = Rules::parse(stages_for_admin).unwrap_err();
        assert!(e.contains("only a promoter is limited to Stages"), "{e}");
        // The rule it belongs to.
        assert!(e.starts_with("2:3: "), "{e}");
    }
}
