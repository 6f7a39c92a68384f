//! Image discovery against a real distribution registry (Debian's `docker-registry`).

use barge_core::model::kargo::ImageSubscription;
use barge_registry::discover::discover_image;
use barge_registry::{Registry, RegistryConfig, RegistryError, Rewrite};
use barge_testkit::registry::{Fault, Plan, Proxy, TestRegistry, tags, write_docker_config};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn fast(config: RegistryConfig) -> RegistryConfig {
    RegistryConfig {
        rate_limit: 10_000.0,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(2),
        ..config
    }
}

fn sub(repo: &str, f: impl FnOnce(&mut ImageSubscription)) -> ImageSubscription {
    let mut s = ImageSubscription {
        repo_url: repo.to_string(),
        ..Default::default()
    };
    f(&mut s);
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_tags_over_many_pages_with_the_fewest_requests() {
    let reg = TestRegistry::start(None).await;
    let mut all = tags("1.0.", 2500);
    all.extend(["latest".to_string(), "2.0.0-rc.1".to_string()]);
    reg.push_tags("demo/app", &all).await;
    let constraint = |s: &mut ImageSubscription| s.constraint = Some("^1.0.0".into());

    // Straight from distribution 2.8: one response with every tag.
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let direct = discover_image(&client, &sub(&format!("{}/demo/app", reg.host), constraint))
        .await
        .unwrap();
    assert_eq!(direct.tags_listed, 2502);
    // SemVer over 1.0.0 … 1.0.2499: the highest first, discoveryLimit (20) of them.
    assert_eq!(direct.candidates.len(), 20);
    assert_eq!(direct.candidates[0].tag, "1.0.2499");
    assert_eq!(direct.candidates[19].tag, "1.0.2480");
    assert!(direct.candidates.iter().all(|c| c.digest.starts_with("sha256:")));
    assert_eq!(direct.requests, 1 + 20, "requests = list pages + discoveryLimit HEADs");

    // A registry that pages by default (100 tags, like GHCR): every page is followed.
    let proxy = Proxy::start_paginating(&reg.host, None, Arc::new(|_, _| Fault::Pass), Some(100)).await;
    let paged = discover_image(&client, &sub(&format!("{}/demo/app", proxy.host), constraint))
        .await
        .unwrap();
    assert_eq!(paged.tags_listed, 2502, "the first page and the last were read");
    assert_eq!(
        paged.candidates.iter().map(|c| &c.tag).collect::<Vec<_>>(),
        direct.candidates.iter().map(|c| &c.tag).collect::<Vec<_>>()
    );
    assert_eq!(paged.requests, 26 + 20, "26 pages of 100 + 20 HEADs");

    // The client's own page size (`n`) is sent and honoured.
    let client = Registry::new(fast(RegistryConfig {
        page_size: Some(1000),
        ..Default::default()
    }))
    .unwrap();
    let big = discover_image(&client, &sub(&format!("{}/demo/app", proxy.host), constraint))
        .await
        .unwrap();
    assert_eq!((big.tags_listed, big.requests), (2502, 3 + 20));
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrites_send_requests_to_a_mirror_but_keep_the_original_name() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("mirror/app", &["1.2.3".to_string()]).await;
    let client = Registry::new(fast(RegistryConfig {
        rewrites: vec![Rewrite::parse(&format!("ghcr.io/acme/=http://{}/mirror/", reg.host)).unwrap()],
        ..Default::default()
    }))
    .unwrap();
    let d = discover_image(&client, &sub("ghcr.io/acme/app", |_| {})).await.unwrap();
    assert_eq!(d.repo_url, "ghcr.io/acme/app");
    assert_eq!(d.candidates[0].tag, "1.2.3");
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_from_docker_config_and_clear_errors_without_secrets() {
    let reg = TestRegistry::start(Some(("barge", "correct-horse"))).await;
    reg.push_tags("private/app", &["1.0.0".to_string(), "1.1.0".to_string()])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("{}/private/app", reg.host);

    let good = write_docker_config(dir.path(), &reg.host, "barge", "correct-horse");
    let client = Registry::new(fast(RegistryConfig {
        docker_config: Some(good),
        ..Default::default()
    }))
    .unwrap();
    let d = discover_image(&client, &sub(&repo, |_| {})).await.unwrap();
    assert_eq!(d.candidates[0].tag, "1.1.0");

    let bad_dir = tempfile::tempdir().unwrap();
    let bad = write_docker_config(bad_dir.path(), &reg.host, "barge", "wrong-battery");
    let client = Registry::new(fast(RegistryConfig {
        docker_config: Some(bad),
        ..Default::default()
    }))
    .unwrap();
    let err = discover_image(&client, &sub(&repo, |_| {})).await.unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("rejected the credentials"), "{err}");
    assert!(!err.to_string().contains("wrong-battery"));

    let none = tempfile::tempdir().unwrap();
    let client = Registry::new(fast(RegistryConfig {
        docker_config: Some(none.path().join("absent.json")),
        ..Default::default()
    }))
    .unwrap();
    let err = discover_image(&client, &sub(&repo, |_| {})).await.unwrap_err();
    assert!(matches!(err, RegistryError::Auth { .. }), "{err}");
    assert!(
        err.to_string().contains("requires credentials and none are configured"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_challenge_through_a_token_server() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("org/app", &tags("3.0.", 5)).await;
    let proxy = Proxy::start(&reg.host, Some(("robot", "token-secret")), Arc::new(|_, _| Fault::Pass)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_docker_config(dir.path(), &proxy.host, "robot", "token-secret");
    let client = Registry::new(fast(RegistryConfig {
        docker_config: Some(cfg),
        ..Default::default()
    }))
    .unwrap();
    let d = discover_image(&client, &sub(&format!("{}/org/app", proxy.host), |_| {}))
        .await
        .unwrap();
    assert_eq!(d.candidates.len(), 5);
    assert_eq!(d.candidates[0].tag, "3.0.4");
    // One challenged request, one token request, then the list and 5 HEADs with the token.
    assert_eq!(d.requests, 1 + 1 + 1 + 5, "the token is fetched once and reused");

    let wrong = tempfile::tempdir().unwrap();
    let cfg = write_docker_config(wrong.path(), &proxy.host, "robot", "nope");
    let client = Registry::new(fast(RegistryConfig {
        docker_config: Some(cfg),
        ..Default::default()
    }))
    .unwrap();
    let err = discover_image(&client, &sub(&format!("{}/org/app", proxy.host), |_| {}))
        .await
        .unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::Auth);
    assert!(
        err.to_string().contains("token server rejected the credentials"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_server_fault_is_retried_like_the_registrys() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("org/app", &tags("3.0.", 5)).await;
    let dir = tempfile::tempdir().unwrap();
    // The first token request fails: a 503, or a connection dropped without an answer.
    for fault in [Fault::Unavailable, Fault::Reset] {
        let plan: Plan = Arc::new(move |n, path: &str| {
            if path.starts_with("/token") && n == 1 {
                fault
            } else {
                Fault::Pass
            }
        });
        let proxy = Proxy::start(&reg.host, Some(("robot", "token-secret")), plan).await;
        let cfg = write_docker_config(dir.path(), &proxy.host, "robot", "token-secret");
        let client = Registry::new(fast(RegistryConfig {
            docker_config: Some(cfg),
            ..Default::default()
        }))
        .unwrap();
        let d = discover_image(&client, &sub(&format!("{}/org/app", proxy.host), |_| {}))
            .await
            .unwrap_or_else(|e| panic!("{fault:?} on the token request: {e}"));
        assert_eq!(d.candidates[0].tag, "3.0.4", "{fault:?}");
        assert_eq!(
            proxy.token_requests.load(Ordering::SeqCst),
            2,
            "{fault:?}: the token request was retried"
        );
        // The failed attempt (challenge + token), then challenge + token + list + 5 HEADs.
        assert_eq!(d.requests, 2 + 3 + 5, "{fault:?}");
    }

    // A token server that never recovers: the policy's attempts, then a transient error.
    let down: Plan = Arc::new(|_, path: &str| {
        if path.starts_with("/token") {
            Fault::Unavailable
        } else {
            Fault::Pass
        }
    });
    let proxy = Proxy::start(&reg.host, Some(("robot", "token-secret")), down).await;
    let cfg = write_docker_config(dir.path(), &proxy.host, "robot", "token-secret");
    let client = Registry::new(fast(RegistryConfig {
        docker_config: Some(cfg),
        max_attempts: 3,
        ..Default::default()
    }))
    .unwrap();
    let err = discover_image(&client, &sub(&format!("{}/org/app", proxy.host), |_| {}))
        .await
        .unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::Transient, "{err}");
    assert!(
        err.to_string().contains("HTTP 503") && err.to_string().contains("after 3 attempts"),
        "{err}"
    );
    assert!(!err.to_string().contains("token-secret"), "{err}");
    assert_eq!(proxy.token_requests.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_faults_are_retried_and_persistent_ones_end_in_a_clear_error() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("flaky/app", &tags("1.0.", 3)).await;
    // First request of each kind: 429 (Retry-After: 1), then 503, a reset, and a truncated
    // tag list; discovery must come through with the right answer.
    let plan: Plan = Arc::new(|n, path: &str| match n {
        1 => Fault::TooMany { retry_after_secs: 1 },
        2 => Fault::Unavailable,
        3 => Fault::Reset,
        4 if path.contains("/tags/list") => Fault::TruncatedJson,
        _ => Fault::Pass,
    });
    let proxy = Proxy::start(&reg.host, None, plan).await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let started = Instant::now();
    let d = discover_image(&client, &sub(&format!("{}/flaky/app", proxy.host), |_| {}))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");
    let found: Vec<&str> = d.candidates.iter().map(|c| c.tag.as_str()).collect();
    assert_eq!(found, ["1.0.2", "1.0.1", "1.0.0"]);
    assert_eq!(d.requests, 5 + 3, "4 faulted attempts + the good listing + 3 HEADs");

    // A registry that never recovers: a clear, classified error and no candidates at all.
    let always: Plan = Arc::new(|_, _| Fault::TooMany { retry_after_secs: 0 });
    let proxy = Proxy::start(&reg.host, None, always).await;
    let client = Registry::new(fast(RegistryConfig {
        max_attempts: 3,
        ..Default::default()
    }))
    .unwrap();
    let err = discover_image(&client, &sub(&format!("{}/flaky/app", proxy.host), |_| {}))
        .await
        .unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::RateLimited, "{err}");
    assert_eq!(
        proxy.requests.load(Ordering::SeqCst),
        3,
        "max_attempts bounds the retries"
    );

    let truncating: Plan = Arc::new(|_, path: &str| {
        if path.contains("/tags/list") {
            Fault::TruncatedJson
        } else {
            Fault::Pass
        }
    });
    let proxy = Proxy::start(&reg.host, None, truncating).await;
    let client = Registry::new(fast(RegistryConfig {
        max_attempts: 2,
        ..Default::default()
    }))
    .unwrap();
    let err = discover_image(&client, &sub(&format!("{}/flaky/app", proxy.host), |_| {}))
        .await
        .unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::Transient, "{err}");
    assert!(err.to_string().contains("incomplete or invalid JSON"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_arch_indexes_select_the_platform() {
    let reg = TestRegistry::start(None).await;
    reg.push_index(
        "multi/app",
        "1.0.0",
        &[("amd64", "2026-01-01T00:00:00Z"), ("arm64", "2026-02-02T00:00:00Z")],
    )
    .await;
    reg.push_index("multi/app", "1.1.0", &[("amd64", "2026-03-03T00:00:00Z")])
        .await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let repo = format!("{}/multi/app", reg.host);
    let arm = discover_image(&client, &sub(&repo, |s| s.platform = Some("linux/arm64".into())))
        .await
        .unwrap();
    // 1.1.0 has no arm64 image: only 1.0.0 qualifies, with the arm64 build time.
    assert_eq!(arm.candidates.len(), 1);
    assert_eq!(arm.candidates[0].tag, "1.0.0");
    assert_eq!(
        arm.candidates[0].created.as_deref(),
        Some("2026-02-02T00:00:00.000000000Z")
    );
    let amd = discover_image(&client, &sub(&repo, |s| s.platform = Some("linux/amd64".into())))
        .await
        .unwrap();
    let found: Vec<&str> = amd.candidates.iter().map(|c| c.tag.as_str()).collect();
    assert_eq!(found, ["1.1.0", "1.0.0"]);
    // The digest recorded is the tag's (the index's), whichever platform was inspected.
    assert_eq!(amd.candidates[1].digest, arm.candidates[0].digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn newest_build_orders_by_build_time_and_caches_by_digest() {
    let reg = TestRegistry::start(None).await;
    for (tag, created) in [
        ("zeta", "2026-01-05T00:00:00Z"),
        ("alpha", "2026-03-01T00:00:00Z"),
        ("mid", "2026-02-01T10:00:00+02:00"),
    ] {
        reg.push_image("build/app", tag, created, "amd64").await;
    }
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let s = sub(&format!("{}/build/app", reg.host), |s| {
        s.image_selection_strategy = Some("NewestBuild".into())
    });
    let first = discover_image(&client, &s).await.unwrap();
    let order: Vec<&str> = first.candidates.iter().map(|c| c.tag.as_str()).collect();
    assert_eq!(order, ["alpha", "mid", "zeta"]);
    assert_eq!(
        first.candidates[1].created.as_deref(),
        Some("2026-02-01T08:00:00.000000000Z")
    );
    // list + per tag: HEAD, manifest GET, config blob GET.
    assert_eq!(first.requests, 1 + 3 * 3);
    let second = discover_image(&client, &s).await.unwrap();
    assert_eq!(second.candidates, first.candidates);
    assert_eq!(second.requests, 1 + 3, "known digests need only their HEAD");
}

#[tokio::test(flavor = "multi_thread")]
async fn digest_follows_a_repushed_tag() {
    let reg = TestRegistry::start(None).await;
    let first = reg
        .push_image("moving/app", "latest", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let s = sub(&format!("{}/moving/app", reg.host), |s| {
        s.image_selection_strategy = Some("Digest".into());
        s.constraint = Some("latest".into());
    });
    let d1 = discover_image(&client, &s).await.unwrap();
    assert_eq!(d1.candidates[0].digest, first);
    let second = reg
        .push_image("moving/app", "latest", "2026-06-01T00:00:00Z", "amd64")
        .await;
    assert_ne!(first, second);
    let d2 = discover_image(&client, &s).await.unwrap();
    assert_eq!(
        (d2.candidates[0].tag.as_str(), d2.candidates[0].digest.as_str()),
        ("latest", second.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_allows_a_burst_then_spaces_requests() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("slow/app", &tags("1.0.", 8)).await;
    // 2 requests per second, bursts of 4: the list and 3 HEADs go at once, the other 5 HEADs
    // wait 0.5 s each, however many run concurrently.
    let client = Registry::new(RegistryConfig {
        rate_limit: 2.0,
        ..Default::default()
    })
    .unwrap();
    let started = Instant::now();
    let d = discover_image(&client, &sub(&format!("{}/slow/app", reg.host), |_| {}))
        .await
        .unwrap();
    assert_eq!(d.requests, 9);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2400), "{took:?}");
    assert!(took < Duration::from_millis(6000), "{took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_repositories_are_not_found() {
    let reg = TestRegistry::start(None).await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let err = discover_image(&client, &sub(&format!("{}/nothing/here", reg.host), |_| {}))
        .await
        .unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_rate_limit_headers_are_reported() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("hub/app", &tags("1.0.", 2)).await;
    let proxy = Proxy::start(&reg.host, None, Arc::new(|_, _| Fault::Pass)).await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let d = discover_image(&client, &sub(&format!("{}/hub/app", proxy.host), |_| {}))
        .await
        .unwrap();
    assert_eq!(
        d.rate_limit,
        Some(barge_registry::RateLimitStatus {
            limit: Some(100),
            remaining: Some(42),
            window_seconds: Some(21600)
        })
    );
    let direct = discover_image(&client, &sub(&format!("{}/hub/app", reg.host), |_| {}))
        .await
        .unwrap();
    assert_eq!(direct.rate_limit, None, "a registry without limits reports none");
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_by_tag_trusts_known_tags_without_requests() {
    let reg = TestRegistry::start(None).await;
    for (tag, created) in [("a", "2026-01-01T00:00:00Z"), ("b", "2026-02-01T00:00:00Z")] {
        reg.push_image("immutable/app", tag, created, "amd64").await;
    }
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let s = sub(&format!("{}/immutable/app", reg.host), |s| {
        s.image_selection_strategy = Some("NewestBuild".into());
        s.cache_by_tag = Some(true);
    });
    let first = discover_image(&client, &s).await.unwrap();
    assert_eq!(first.candidates[0].tag, "b");
    let second = discover_image(&client, &s).await.unwrap();
    assert_eq!(second.candidates, first.candidates);
    assert_eq!(second.requests, 1, "only the listing: known tags are trusted");
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_tls_fails_clearly_unless_verification_is_skipped() {
    let reg = TestRegistry::start_tls().await;
    reg.push_tags("tls/app", &["1.0.0".to_string()]).await;
    let repo = format!("https://{}/tls/app", reg.host);
    let strict = Registry::new(fast(RegistryConfig::default())).unwrap();
    let err = discover_image(&strict, &sub(&repo, |_| {})).await.unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::Invalid, "{err}");
    assert!(err.to_string().contains("insecureSkipTLSVerify"), "{err}");
    assert_eq!(strict.requests(), 1, "a certificate problem is not retried");
    let insecure = Registry::new(fast(RegistryConfig {
        insecure_skip_tls_verify: true,
        ..Default::default()
    }))
    .unwrap();
    let d = discover_image(&insecure, &sub(&repo, |_| {})).await.unwrap();
    assert_eq!(d.candidates[0].tag, "1.0.0");
}

/// A registry whose `Docker-Content-Digest` disagrees with the manifests it serves (a
/// made-up `sha256:000…`) or is not a digest at all: discovery refuses it, so no Freight can
/// be minted at it.
#[tokio::test(flavor = "multi_thread")]
async fn a_lying_registrys_digests_are_refused() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("lying/app", &["1.0.0".to_string(), "1.1.0".to_string()])
        .await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let zeros: &'static str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    for (lie, says) in [
        (zeros, "bytes it sent are sha256:"),
        ("sha256:not-a-digest", "malformed"),
    ] {
        let proxy = Proxy::start(
            &reg.host,
            None,
            Arc::new(move |_, path| {
                if path.contains("/manifests/") {
                    Fault::Digest(lie)
                } else {
                    Fault::Pass
                }
            }),
        )
        .await;
        let err = discover_image(&client, &sub(&format!("{}/lying/app", proxy.host), |_| {}))
            .await
            .unwrap_err();
        assert_eq!(err.class(), barge_core::ErrorClass::Invalid, "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.to_string().contains("refusing"), "{err}");
    }
}

/// A listed tag that cannot be a tag name (5,006 characters) and one the registry does not
/// have are skipped and reported; the next valid candidates are selected.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_and_missing_listed_tags_are_skipped_for_the_next_candidates() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("broken/app", &["1.0.0".to_string(), "1.1.0".to_string()])
        .await;
    let huge = format!("9.9.9-{}", "a".repeat(5000));
    assert_eq!(huge.len(), 5006);
    let proxy = Proxy::start_listing_extra(&reg.host, vec![huge, "9.0.0".to_string()]).await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let repo = format!("{}/broken/app", proxy.host);
    let d = discover_image(&client, &sub(&repo, |_| {})).await.unwrap();
    assert_eq!(d.tags_listed, 4);
    let tags: Vec<&str> = d.candidates.iter().map(|c| c.tag.as_str()).collect();
    assert_eq!(tags, ["1.1.0", "1.0.0"]);
    assert_eq!(d.skipped.len(), 2, "{:?}", d.skipped);
    assert!(d.skipped[0].tag.starts_with("9.9.9-aaa") && d.skipped[0].tag.chars().count() == 65);
    assert_eq!(d.skipped[0].reason, "not a valid OCI tag name (5006 characters)");
    assert_eq!(d.skipped[1].tag, "9.0.0");
    assert!(d.skipped[1].reason.contains("no manifest"), "{:?}", d.skipped[1]);

    // With discoveryLimit 1, the missing tag's place goes to the next one.
    let one = Registry::new(fast(RegistryConfig::default())).unwrap();
    let d = discover_image(&one, &sub(&repo, |s| s.discovery_limit = Some(1)))
        .await
        .unwrap();
    assert_eq!(d.candidates.len(), 1);
    assert_eq!(d.candidates[0].tag, "1.1.0");
    assert_eq!(d.requests, 1 + 2, "the listing, the missing tag, its replacement");
}

/// What a pass learned spares the next one its requests: with cacheByTag, an unchanged tag
/// list costs the listing alone; without it, the listing and a HEAD of the selected tag.
#[tokio::test(flavor = "multi_thread")]
async fn a_steady_state_pass_costs_one_listing() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("steady/app", &tags("1.0.", 25)).await;
    let repo = format!("{}/steady/app", reg.host);
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let immutable = sub(&repo, |s| s.cache_by_tag = Some(true));
    let first = discover_image(&client, &immutable).await.unwrap();
    assert_eq!((first.requests, first.reused), (1 + 20, false));
    assert!(first.learned.is_some());
    let second = discover_image(&client, &immutable).await.unwrap();
    assert_eq!((second.requests, second.reused), (1, true));
    assert_eq!(second.candidates, first.candidates);
    assert!(second.learned.is_none(), "nothing new to keep");

    let mutable = sub(&repo, |_| {});
    discover_image(&client, &mutable).await.unwrap();
    let again = discover_image(&client, &mutable).await.unwrap();
    assert_eq!(
        (again.requests, again.reused),
        (2, true),
        "the listing and the selected tag's HEAD"
    );
    assert_eq!(again.candidates, first.candidates);

    // A new tag: the listing, and the new tag fetched (the others are known).
    reg.push_tags("steady/app", &["1.0.25".to_string()]).await;
    let third = discover_image(&client, &immutable).await.unwrap();
    assert_eq!((third.requests, third.reused), (2, false));
    assert_eq!(third.candidates[0].tag, "1.0.25");
    // Memory handed to a new client (as the store does) serves it the same way.
    let fresh = Registry::new(fast(RegistryConfig::default())).unwrap();
    fresh.recall_image(third.learned.unwrap()).await;
    let d = discover_image(&fresh, &immutable).await.unwrap();
    assert_eq!((d.requests, d.reused), (1, true));
}

/// A tag listed before its manifest can be read (a registry lists a tag while its manifest is
/// being pushed, or lists ahead of what it serves): the pass skips it, and once the manifest
/// lands the list is what it was. Before, that unchanged list reused the pass that skipped the
/// tag, which was then never discovered; with replicas discovering every second this left a
/// Warehouse minting nothing until another tag was pushed.
#[tokio::test(flavor = "multi_thread")]
async fn a_tag_listed_before_its_manifest_is_tried_again_while_the_list_is_unchanged() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("early/app", &tags("1.0.", 3)).await;
    // The proxy lists 1.0.3, which the registry does not have yet.
    let proxy = Proxy::start_listing_extra(&reg.host, vec!["1.0.3".to_string()]).await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    for cache_by_tag in [false, true] {
        let s = sub(&format!("{}/early/app", proxy.host), |s| {
            s.cache_by_tag = Some(cache_by_tag)
        });
        let first = discover_image(&client, &s).await.unwrap();
        assert_eq!(first.candidates[0].tag, "1.0.2");
        assert!(first.skipped.iter().any(|k| k.tag == "1.0.3"), "{first:?}");
    }
    reg.push_tags("early/app", &["1.0.3".to_string()]).await;
    for cache_by_tag in [false, true] {
        let s = sub(&format!("{}/early/app", proxy.host), |s| {
            s.cache_by_tag = Some(cache_by_tag)
        });
        let second = discover_image(&client, &s).await.unwrap();
        assert_eq!(
            second.candidates[0].tag, "1.0.3",
            "cacheByTag {cache_by_tag}: {second:?}"
        );
        assert!(!second.reused);
        // Found now: the next pass of the unchanged list is reused again.
        let third = discover_image(&client, &s).await.unwrap();
        assert!(third.reused, "cacheByTag {cache_by_tag}: {third:?}");
    }
}

/// A registry that pages its tag lists and sends an ETag with each page: a new tag whose name
/// sorts onto a later page leaves the first page, and its ETag, as they were. Revalidating
/// with the first page's ETag answered 304 and the new tag was never seen; a list of several
/// pages is now listed again in full.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_tag_on_a_later_page_is_seen_although_the_first_page_is_unchanged() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("paged/app", &tags("1.0.", 150)).await;
    let proxy = Proxy::start_paginating(&reg.host, None, Arc::new(|_, _| Fault::Pass), Some(100)).await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let immutable = sub(&format!("{}/paged/app", proxy.host), |s| s.cache_by_tag = Some(true));
    let first = discover_image(&client, &immutable).await.unwrap();
    assert_eq!(first.candidates[0].tag, "1.0.149");
    // "9.0.0" sorts after every "1.0.*": it lands on the second page.
    reg.push_tags("paged/app", &["9.0.0".to_string()]).await;
    let second = discover_image(&client, &immutable).await.unwrap();
    assert_eq!(second.candidates[0].tag, "9.0.0", "{second:?}");
    assert_eq!(second.tags_listed, 151);
    assert_eq!(proxy.not_modified.load(Ordering::SeqCst), 0, "no page was revalidated");
}

/// A registry that sends ETags on tag lists: the next pass asks with `If-None-Match`, the
/// unchanged list comes back as a 304 without a body, and the pass reuses what it knew.
#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_listing_is_revalidated_with_its_etag() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags("etag/app", &tags("1.0.", 25)).await;
    let proxy = Proxy::start_paginating(&reg.host, None, Arc::new(|_, _| Fault::Pass), Some(100)).await;
    let client = Registry::new(fast(RegistryConfig::default())).unwrap();
    let immutable = sub(&format!("{}/etag/app", proxy.host), |s| s.cache_by_tag = Some(true));
    let first = discover_image(&client, &immutable).await.unwrap();
    assert_eq!((first.requests, first.reused), (1 + 20, false));
    assert_eq!(proxy.not_modified.load(Ordering::SeqCst), 0);
    let second = discover_image(&client, &immutable).await.unwrap();
    assert_eq!((second.requests, second.reused), (1, true));
    assert_eq!(
        proxy.not_modified.load(Ordering::SeqCst),
        1,
        "the listing was revalidated, not sent again"
    );
    assert_eq!(second.candidates, first.candidates);
    // A new tag changes the list and its ETag: a 200 with the list, and the new tag fetched.
    reg.push_tags("etag/app", &["1.0.25".to_string()]).await;
    let third = discover_image(&client, &immutable).await.unwrap();
    assert_eq!((third.requests, third.reused), (2, false));
    assert_eq!(third.candidates[0].tag, "1.0.25");
    assert_eq!(proxy.not_modified.load(Ordering::SeqCst), 1);
}
