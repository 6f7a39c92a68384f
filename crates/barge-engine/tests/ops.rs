//! The engine's operations against a real SQLite store, answered typed; and one promotion run
//! end to end against a real git repository (git daemon).

use barge_core::authz::{Principal, Role};
use barge_core::promotion::Phase;
use barge_core::{Catalog, ErrorClass};
use barge_engine::ops::{self, Call};
use barge_engine::tokens::TokenCall;
use barge_engine::{Answer, EngineError};
use barge_store::Store;
use barge_testkit::fixtures::{dev_stage, freight_from_warehouse};
use barge_testkit::git::{GitDaemon, bare_repo, git};

const WAREHOUSE: &str = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: shop}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {name: shop, namespace: shop}\nspec:\n  promotionPolicies:\n    - stage: dev\n      autoPromotionEnabled: true\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: app, namespace: shop}\nspec:\n  subscriptions:\n    - image: {repoURL: ghcr.io/acme/app}\n---\n";

/// Edits `values.yaml` in the config repository at `repo` and pushes it.
fn steps(repo: &str) -> String {
    format!(
        r#"
        - uses: git-clone
          config: {{repoURL: "{repo}", checkout: [{{branch: main, path: ./r}}]}}
        - uses: yaml-update
          config: {{path: ./r/values.yaml, updates: [{{key: image.tag, value: "${{{{ imageFrom('ghcr.io/acme/app').Tag }}}}"}}]}}
        - uses: git-commit
          config: {{path: ./r, message: "dev gets ${{{{ imageFrom('ghcr.io/acme/app').Tag }}}}"}}
        - uses: git-push
          config: {{path: ./r}}
"#
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    catalog: Catalog,
    store: Store,
    /// The one Freight's name and alias.
    freight: (String, String),
}

async fn fixture(repo: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::default();
    catalog.load_text("shop.yaml", &format!("{WAREHOUSE}{}", dev_stage(&steps(repo))));
    barge_core::validate::validate(&mut catalog);
    assert_eq!(catalog.errors(), 0, "{:?}", catalog.diagnostics);
    let store = Store::open(&barge_testkit::postgres::sqlite_url(&dir)).await.unwrap();
    let minted = store
        .mint_freight("shop", "app", freight_from_warehouse(&catalog, "shop", "app"), 1)
        .await
        .unwrap();
    let f = minted.freight.freight;
    Fixture {
        dir,
        catalog,
        store,
        freight: (f.metadata.name.clone(), f.alias.unwrap()),
    }
}

impl Fixture {
    /// In-process, as the CLI's `--db` calls.
    async fn call(&self, call: Call) -> Result<Answer, EngineError> {
        self.call_as(&Principal::local(), call).await
    }

    async fn call_as(&self, principal: &Principal, call: Call) -> Result<Answer, EngineError> {
        let events = barge_engine::events::EventSink::new(Some(self.store.clone()), Vec::new());
        let cx = ops::Context {
            store: &self.store,
            events: &events,
            catalog: &self.catalog,
            refresh: None,
            health: None,
            principal,
            engine: None,
        };
        ops::handle(&cx, call).await
    }
}

fn create_token(name: &str, role: Role, stages: Option<Vec<String>>) -> Call {
    Call::Token(TokenCall::Create {
        name: name.into(),
        role,
        project: Some("shop".into()),
        stages,
        actor: "alice".into(),
    })
}

fn promote(freight: &str) -> Call {
    Call::Promote {
        project: None,
        stage: "dev".into(),
        freight: freight.into(),
        actor: "alice".into(),
        override_reason: None,
    }
}

#[tokio::test]
async fn the_operations_answer_typed_and_fail_with_a_class() {
    let fx = fixture("git://127.0.0.1:9/config.git").await;
    let (name, alias) = fx.freight.clone();

    let Answer::Stages(stages) = fx
        .call(Call::GetStages {
            project: None,
            name: None,
        })
        .await
        .unwrap()
    else {
        panic!("not stages")
    };
    assert_eq!(stages.len(), 1);
    assert_eq!((stages[0].name.as_str(), stages[0].auto_promotion), ("dev", true));
    let unknown = fx
        .call(Call::GetStages {
            project: None,
            name: Some("nope".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.class(), Some(ErrorClass::NotFound), "{unknown}");

    let Answer::Freight(freight) = fx
        .call(Call::GetFreight {
            project: None,
            warehouse: None,
            name: Some(alias.clone()),
            page: None,
        })
        .await
        .unwrap()
    else {
        panic!("not freight")
    };
    assert_eq!(freight[0].freight.metadata.name, name);
    assert_eq!(freight[0].warehouse, "app");

    let Answer::Queued(queued) = fx.call(promote(&alias)).await.unwrap() else {
        panic!("not queued")
    };
    assert_eq!(queued.promotions.len(), 1);
    let promotion = queued.promotions[0].clone();
    // A second one while the first is pending collides with it.
    let busy = fx.call(promote(&alias)).await.unwrap_err();
    assert_eq!(busy.class(), Some(ErrorClass::Conflict), "{busy}");

    let Answer::Promotions(found) = fx
        .call(Call::GetPromotions {
            project: None,
            stage: None,
            name: Some(promotion.clone()),
        })
        .await
        .unwrap()
    else {
        panic!("not promotions")
    };
    assert_eq!((found[0].phase, found[0].actor.as_str()), (Phase::Pending, "alice"));
    assert_eq!(found[0].steps.len(), 4);
    assert!(found[0].outputs.is_some(), "one asked for by name carries its outputs");

    let Answer::Aborted(aborted) = fx
        .call(Call::Abort {
            project: None,
            name: promotion.clone(),
            actor: "alice".into(),
        })
        .await
        .unwrap()
    else {
        panic!("not aborted")
    };
    assert_eq!(aborted.phase, Phase::Aborted);

    let Answer::Approved(approved) = fx
        .call(Call::Approve {
            project: None,
            stage: "dev".into(),
            freight: alias.clone(),
            actor: "bob".into(),
        })
        .await
        .unwrap()
    else {
        panic!("not approved")
    };
    assert_eq!(
        (approved.freight.as_str(), approved.approved_by.as_str()),
        (name.as_str(), "bob")
    );

    let Answer::Held(held) = fx
        .call(Call::Hold {
            project: None,
            stage: "dev".into(),
            actor: "carol".into(),
        })
        .await
        .unwrap()
    else {
        panic!("not held")
    };
    assert_eq!(held.holds.len(), 1);
    assert_eq!(held.holds[0].actor, "carol");
    let Answer::Released(released) = fx
        .call(Call::Release {
            project: None,
            stage: "dev".into(),
            actor: "carol".into(),
        })
        .await
        .unwrap()
    else {
        panic!("not released")
    };
    assert_eq!(released.released, 1);

    let bad_alias = fx
        .call(Call::Alias {
            project: None,
            freight: alias.clone(),
            alias: "Not An Alias".into(),
            actor: "alice".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_alias.class(), Some(ErrorClass::Invalid), "{bad_alias}");
    let Answer::Aliased(aliased) = fx
        .call(Call::Alias {
            project: None,
            freight: alias.clone(),
            alias: "release-1".into(),
            actor: "alice".into(),
        })
        .await
        .unwrap()
    else {
        panic!("not aliased")
    };
    assert_eq!(
        (aliased.freight.as_str(), aliased.alias.as_str()),
        (name.as_str(), "release-1")
    );

    let Answer::History(events) = fx
        .call(Call::History {
            project: None,
            stage: None,
            freight: Some("release-1".into()),
            since: None,
            kind: None,
            until: None,
            before: None,
            limit: 100,
        })
        .await
        .unwrap()
    else {
        panic!("not history")
    };
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in [
        "freight.minted",
        "promotion.created",
        "promotion.aborted",
        "freight.approved",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

/// Tokens answer typed (the secret only when created); a refusal has a class: none for an
/// anonymous caller is `auth` (401), one for a known caller's role or scope is `forbidden`.
#[tokio::test]
async fn tokens_answer_typed_and_refusals_have_a_class() {
    let fx = fixture("git://127.0.0.1:9/config.git").await;
    let alias = fx.freight.1.clone();
    let Answer::TokenCreated(created) = fx
        .call(create_token("ci", Role::Promoter, Some(vec!["staging".into()])))
        .await
        .unwrap()
    else {
        panic!("not a created token")
    };
    assert!(
        created.token.starts_with(barge_engine::tokens::PREFIX),
        "{}",
        created.token
    );
    assert_eq!(
        (
            created.info.name.as_str(),
            created.info.role,
            created.info.project.as_deref()
        ),
        ("ci", Role::Promoter, Some("shop"))
    );
    assert_eq!(created.info.stages, Some(vec!["staging".to_string()]));
    let again = fx.call(create_token("ci", Role::Viewer, None)).await.unwrap_err();
    assert_eq!(again.class(), Some(ErrorClass::Conflict), "{again}");
    let bad = fx
        .call(create_token("ci", Role::Viewer, Some(vec!["dev".into()])))
        .await
        .unwrap_err();
    assert_eq!(bad.class(), Some(ErrorClass::Invalid), "{bad}");

    // The promoter limited to staging may not promote into dev; anonymous may not at all.
    let ci = Principal::token("ci", Role::Promoter, Some("shop".into()), Some(vec!["staging".into()])).unwrap();
    let forbidden = fx.call_as(&ci, promote(&alias)).await.unwrap_err();
    assert_eq!(forbidden.class(), Some(ErrorClass::Forbidden), "{forbidden}");
    let anonymous = Principal::anonymous(Role::Viewer).unwrap();
    let unauthenticated = fx.call_as(&anonymous, promote(&alias)).await.unwrap_err();
    assert_eq!(unauthenticated.class(), Some(ErrorClass::Auth), "{unauthenticated}");
    let listing = fx.call_as(&ci, Call::Token(TokenCall::List)).await.unwrap_err();
    assert_eq!(
        listing.class(),
        Some(ErrorClass::Forbidden),
        "only an admin lists tokens: {listing}"
    );

    let Answer::TokenRevoked(revoked) = fx
        .call(Call::Token(TokenCall::Revoke {
            name: "ci".into(),
            actor: "alice".into(),
        }))
        .await
        .unwrap()
    else {
        panic!("not a revoked token")
    };
    assert!(revoked.revoked_at.is_some());
    let Answer::Tokens(tokens) = fx.call(Call::Token(TokenCall::List)).await.unwrap() else {
        panic!("not tokens")
    };
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].revoked_at, revoked.revoked_at);
    let unknown = fx
        .call(Call::Token(TokenCall::Revoke {
            name: "nobody".into(),
            actor: "alice".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.class(), Some(ErrorClass::NotFound), "{unknown}");
}

/// Each answer read back from its JSON (what `--server` does) serialises to the same JSON.
#[tokio::test]
async fn answers_survive_the_wire() {
    let fx = fixture("git://127.0.0.1:9/config.git").await;
    let alias = fx.freight.1.clone();
    fx.call(promote(&alias)).await.unwrap();
    for call in [
        Call::GetStages {
            project: None,
            name: None,
        },
        Call::GetWarehouses { project: None },
        Call::GetFreight {
            project: None,
            warehouse: None,
            name: None,
            page: None,
        },
        Call::GetPromotions {
            project: None,
            stage: None,
            name: None,
        },
        Call::History {
            project: None,
            stage: None,
            freight: None,
            since: None,
            kind: None,
            until: None,
            before: None,
            limit: 10,
        },
        create_token("wall", Role::Viewer, None),
        Call::Token(TokenCall::List),
        Call::Token(TokenCall::Revoke {
            name: "wall".into(),
            actor: "alice".into(),
        }),
    ] {
        let sent = serde_json::to_value(fx.call(call.clone()).await.unwrap()).unwrap();
        let read = call.decode(sent.clone()).unwrap();
        assert_eq!(serde_json::to_value(read).unwrap(), sent, "{call:?}");
    }
}

#[tokio::test]
async fn a_promotion_runs_end_to_end_against_a_real_git_repository() {
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(root.path(), "config.git", &[("values.yaml", "image:\n  tag: 1.0.0\n")]);
    let daemon = GitDaemon::start(root.path());
    let fx = fixture(&format!("git://127.0.0.1:{}/config.git", daemon.port)).await;
    // A dry run first: the diff the push would land, nothing pushed, nothing stored.
    let head = git(&bare, &["rev-parse", "main"]);
    let plan = dry_run_here(&fx).await;
    assert_eq!(plan.phase, Phase::Succeeded, "{}", plan.message);
    assert_eq!((plan.stage.as_str(), &plan.freight), ("dev", &fx.freight.0));
    let [push] = plan.pushes.as_slice() else {
        panic!("one push: {plan:?}")
    };
    assert_eq!(
        (push.branch.as_str(), push.files.as_slice()),
        ("main", &["values.yaml".to_string()][..])
    );
    assert!(push.diff.contains("-  tag: 1.0.0\n+  tag: 1.4.2\n"), "{}", push.diff);
    let skipped: Vec<&str> = plan.skipped_steps.iter().map(|s| s.uses.as_str()).collect();
    assert_eq!(skipped, ["git-push"]);
    assert_eq!(git(&bare, &["rev-parse", "main"]), head, "a dry run pushes nothing");
    let Answer::Promotions(none) = fx
        .call(Call::GetPromotions {
            project: None,
            stage: None,
            name: None,
        })
        .await
        .unwrap()
    else {
        panic!("not promotions")
    };
    assert!(none.is_empty(), "a dry run stores no promotion: {none:?}");
    let report = promote_here(&fx).await;
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.message);
    assert_eq!(report.freight_alias.as_deref(), Some(fx.freight.1.as_str()));
    let promotion = report.name;
    let clone = root.path().join("check");
    git(
        root.path(),
        &["clone", "-q", bare.to_str().unwrap(), clone.to_str().unwrap()],
    );
    let values = std::fs::read_to_string(clone.join("values.yaml")).unwrap();
    assert!(values.contains("tag: 1.4.2"), "{values}");
    // The store knows the Freight is in dev now.
    let Answer::Freight(freight) = fx
        .call(Call::GetFreight {
            project: None,
            warehouse: None,
            name: Some(report.freight.clone()),
            page: None,
        })
        .await
        .unwrap()
    else {
        panic!("not freight")
    };
    assert!(freight[0].status.currently_in.contains_key("dev"));
    let Answer::Promotions(stored) = fx
        .call(Call::GetPromotions {
            project: None,
            stage: None,
            name: Some(promotion),
        })
        .await
        .unwrap()
    else {
        panic!("not promotions")
    };
    assert_eq!(stored[0].phase, Phase::Succeeded);
}

/// Where `barge promote` runs in-process on the fixture: its store, a work directory under it.
fn here(fx: &Fixture) -> (barge_engine::config::Config, barge_registry::RegistryConfig, String) {
    let config = barge_engine::config::Config::default();
    let registry = config.registry_config(&barge_engine::config::RegistryFlags {
        rewrites: &[],
        plain_http: &[],
        rate_limit: None,
        page_size: None,
    });
    (config, registry, barge_testkit::postgres::sqlite_url(&fx.dir))
}

/// `barge promote` in-process: the fixture's Freight (by alias) into dev, as its report.
async fn promote_here(fx: &Fixture) -> barge_engine::promote::PromotionReport {
    let (config, registry, db) = here(fx);
    let here = barge_engine::promote::Here {
        db: &db,
        work_dir: fx.dir.path().join("work"),
        registry: &registry,
        file: &config,
    };
    let request = barge_engine::promote::Request {
        stage: "dev",
        project: None,
        freight: &fx.freight.1,
        actor: "alice",
        override_window: None,
    };
    barge_engine::promote::run_here(&fx.catalog, here, &request)
        .await
        .unwrap()
}

/// `barge promote --dry-run` in-process: the fixture's Freight (by alias) into dev.
async fn dry_run_here(fx: &Fixture) -> barge_engine::answer::PromotionPlan {
    let (config, registry, db) = here(fx);
    let here = barge_engine::promote::Here {
        db: &db,
        work_dir: fx.dir.path().join("work"),
        registry: &registry,
        file: &config,
    };
    let call = Call::PromoteDryRun {
        project: None,
        stage: "dev".into(),
        freight: fx.freight.1.clone(),
        actor: "alice".into(),
        override_reason: None,
    };
    barge_engine::dryrun::plan_here(&fx.catalog, here, call).await.unwrap()
}
