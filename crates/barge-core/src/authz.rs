//! Who may do what: roles, principals and the one authorization decision every call of the
//! API and the CLI goes through.
//!
//! The roles are Kargo's built-in ones (docs.kargo.io, "Access Controls": `kargo-viewer`,
//! `kargo-promoter`, `kargo-admin`): a viewer reads; a promoter may also promote, approve,
//! abort, hold, release and verify, and, given a list of Stages, only into those (Kargo's
//! `promote` verb granted on named Stages); an admin may do everything, tokens included.
//! A principal may be limited to one project. The anonymous principal (Argo CD's
//! `users.anonymous.enabled`) never does more than read, whatever role it was given.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a principal may do, in increasing order of power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Promoter,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Promoter => "promoter",
            Role::Admin => "admin",
        }
    }

    /// `a viewer`, `a promoter`, `an admin`.
    pub fn with_article(self) -> &'static str {
        match self {
            Role::Viewer => "a viewer",
            Role::Promoter => "a promoter",
            Role::Admin => "an admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "promoter" => Some(Role::Promoter),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who makes a call, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (or the local user, in-process); the audit log's actor derives from it.
    pub name: String,
    pub role: Role,
    /// The one project it may act in; `None`: every project.
    pub project: Option<String>,
    /// The Stages a promoter may act on; `None`: every Stage (of its project).
    pub stages: Option<Vec<String>>,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Authenticated by a bearer token.
    Token,
    /// Authenticated by an OIDC issuer's JWT; the name is its subject (`sub`).
    Oidc,
    /// No token: `barge serve --anonymous-role`.
    Anonymous,
    /// In-process (`--db`): whoever can open the store can do anything to it, so the CLI
    /// names itself by the local user (`--actor`).
    Local,
}

/// Why a principal cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPrincipal {
    #[error("only a promoter is limited to Stages (--stages), not {}", .0.with_article())]
    StagesWithoutPromoter(Role),
    #[error("--stages names no Stage")]
    NoStages,
    #[error("anonymous access is at most viewer, not {0}: requests without a token must never change anything")]
    AnonymousAboveViewer(Role),
}

impl Principal {
    /// A bearer token's holder. Stages limit promoters only.
    pub fn token(
        name: &str,
        role: Role,
        project: Option<String>,
        stages: Option<Vec<String>>,
    ) -> Result<Principal, InvalidPrincipal> {
        match &stages {
            Some(_) if role != Role::Promoter => return Err(InvalidPrincipal::StagesWithoutPromoter(role)),
            Some(s) if s.is_empty() => return Err(InvalidPrincipal::NoStages),
            _ => {}
        }
        Ok(Principal {
            name: name.to_string(),
            role,
            project,
            stages,
            kind: Kind::Token,
        })
    }

    /// The subject of a JWT an OIDC issuer signed, with the role a rule gave it. Stages
    /// limit promoters only, as for tokens.
    pub fn oidc(
        subject: &str,
        role: Role,
        project: Option<String>,
        stages: Option<Vec<String>>,
    ) -> Result<Principal, InvalidPrincipal> {
        let token = Principal::token(subject, role, project, stages)?;
        Ok(Principal {
            kind: Kind::Oidc,
            ..token
        })
    }

    /// Requests without a token, when `barge serve --anonymous-role` allows them.
    pub fn anonymous(role: Role) -> Result<Principal, InvalidPrincipal> {
        if role > Role::Viewer {
            return Err(InvalidPrincipal::AnonymousAboveViewer(role));
        }
        Ok(Principal {
            name: "anonymous".into(),
            role,
            project: None,
            stages: None,
            kind: Kind::Anonymous,
        })
    }

    /// The CLI working on the store itself (`--db`).
    pub fn local() -> Principal {
        Principal {
            name: "local".to_string(),
            role: Role::Admin,
            project: None,
            stages: None,
            kind: Kind::Local,
        }
    }

    /// The in-process CLI (`--db`), which acts as its `--actor`.
    pub fn is_local(&self) -> bool {
        self.kind == Kind::Local
    }

    pub fn is_anonymous(&self) -> bool {
        self.kind == Kind::Anonymous
    }

    /// Who the audit log says acted: `token:NAME`, `oidc:SUBJECT` or `anonymous` (the
    /// in-process CLI records its `--actor` instead).
    pub fn actor(&self) -> String {
        match self.kind {
            Kind::Token => format!("token:{}", self.name),
            Kind::Oidc => format!("oidc:{}", self.name),
            Kind::Anonymous | Kind::Local => self.name.clone(),
        }
    }
}

/// A token's name as the audit log shows it (`token:NAME`): 1 to 64 letters, digits, `.`,
/// `_` and `-`.
pub fn valid_token_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a call does, as far as permissions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Stages, Warehouses, Freight, promotions, history.
    Read,
    /// The server's version: anyone authenticated.
    ServerInfo,
    Promote,
    Approve,
    Abort,
    Hold,
    Release,
    Verify,
    /// Renaming a Freight's alias.
    Alias,
    /// Asking for a discovery now.
    Refresh,
    /// Creating, listing and revoking API tokens.
    ManageTokens,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Read,
        Action::ServerInfo,
        Action::Promote,
        Action::Approve,
        Action::Abort,
        Action::Hold,
        Action::Release,
        Action::Verify,
        Action::Alias,
        Action::Refresh,
        Action::ManageTokens,
    ];

    /// The least role allowed to do it.
    pub fn needs(self) -> Role {
        match self {
            Action::Read | Action::ServerInfo => Role::Viewer,
            Action::Promote | Action::Approve | Action::Abort | Action::Hold | Action::Release | Action::Verify => {
                Role::Promoter
            }
            Action::Alias | Action::Refresh | Action::ManageTokens => Role::Admin,
        }
    }

    /// Whether it acts on one Stage (which a promoter's Stage list limits).
    fn on_a_stage(self) -> bool {
        self.needs() == Role::Promoter
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::ServerInfo => "server-info",
            Action::Promote => "promote",
            Action::Approve => "approve",
            Action::Abort => "abort",
            Action::Hold => "hold",
            Action::Release => "release",
            Action::Verify => "verify",
            Action::Alias => "alias",
            Action::Refresh => "refresh",
            Action::ManageTokens => "manage tokens",
        }
    }
}

/// A refusal and its reason, for the caller and the audit log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    pub reason: String,
    /// The principal is anonymous: a token might be allowed (HTTP 401, not 403).
    pub unauthenticated: bool,
}

/// Whether `principal` may do `action` in `project` (`None`: across every project) on
/// `stage` (`None`: no particular Stage, or one not known).
pub fn authorize(
    principal: &Principal,
    action: Action,
    project: Option<&str>,
    stage: Option<&str>,
) -> Result<(), Denied> {
    let who = match principal.kind {
        Kind::Token => format!("token {:?} ({})", principal.name, principal.role),
        Kind::Oidc => format!("OIDC subject {:?} ({})", principal.name, principal.role),
        Kind::Anonymous => "a request without a token".to_string(),
        Kind::Local => return Ok(()),
    };
    let deny = |reason: String| {
        Err(Denied {
            reason,
            unauthenticated: principal.is_anonymous(),
        })
    };
    // Anonymous requests read at most, whatever role they were given.
    let role = if principal.is_anonymous() {
        principal.role.min(Role::Viewer)
    } else {
        principal.role
    };
    if role < action.needs() {
        let how = if principal.is_anonymous() {
            "; send a token (BARGE_TOKEN or --token-file)".to_string()
        } else {
            format!("; it needs {} token", action.needs().with_article())
        };
        return deny(format!("{who} may not {}{how}", action.as_str()));
    }
    if action == Action::ServerInfo {
        return Ok(());
    }
    if let Some(mine) = &principal.project {
        // Tokens are server-wide: an admin of one project manages none.
        if action == Action::ManageTokens {
            return deny(format!(
                "{who} is limited to project {mine:?}; tokens are managed by an admin of every project"
            ));
        }
        match project {
            Some(p) if p == mine => {}
            Some(p) => return deny(format!("{who} is limited to project {mine:?}, not {p:?}")),
            None => return deny(format!("{who} is limited to project {mine:?}; add --project {mine}")),
        }
    }
    if let (Some(allowed), true) = (&principal.stages, action.on_a_stage()) {
        match stage {
            Some(s) if allowed.iter().any(|a| a == s) => {}
            Some(s) => {
                return deny(format!(
                    "{who} may {} only on Stages {}, not {s:?}",
                    action.as_str(),
                    allowed.join(", ")
                ));
            }
            None => {
                return deny(format!(
                    "{who} may {} only on Stages {}, and this call names none",
                    action.as_str(),
                    allowed.join(", ")
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token(role: Role, project: Option<&str>, stages: Option<&[&str]>) -> Principal {
        Principal::token(
            "t",
            role,
            project.map(str::to_string),
            stages.map(|s| s.iter().map(|x| x.to_string()).collect()),
        )
        .unwrap()
    }

    const WRITES: [Action; 9] = [
        Action::Promote,
        Action::Approve,
        Action::Abort,
        Action::Hold,
        Action::Release,
        Action::Verify,
        Action::Alias,
        Action::Refresh,
        Action::ManageTokens,
    ];

    #[test]
    fn the_role_matrix() {
        let viewer = token(Role::Viewer, None, None);
        let promoter = token(Role::Promoter, None, None);
        let admin = token(Role::Admin, None, None);
        for action in Action::ALL {
            let expect = |role: Role| role >= action.needs();
            assert_eq!(
                authorize(&viewer, action, Some("p"), Some("s")).is_ok(),
                expect(Role::Viewer),
                "{action:?}"
            );
            assert_eq!(
                authorize(&promoter, action, Some("p"), Some("s")).is_ok(),
                expect(Role::Promoter),
                "{action:?}"
            );
            assert!(authorize(&admin, action, Some("p"), Some("s")).is_ok(), "{action:?}");
        }
        // The promoter's list, exactly as the issue names it.
        for a in [
            Action::Promote,
            Action::Approve,
            Action::Abort,
            Action::Hold,
            Action::Release,
            Action::Verify,
        ] {
            assert!(authorize(&promoter, a, None, Some("prod")).is_ok(), "{a:?}");
        }
        for a in [Action::Alias, Action::Refresh, Action::ManageTokens] {
            let denied = authorize(&promoter, a, None, None).unwrap_err();
            assert!(
                denied.reason.contains("needs an admin token") && !denied.unauthenticated,
                "{denied}"
            );
        }
    }

    #[test]
    fn a_promoter_with_stages_promotes_into_those_only() {
        let p = token(Role::Promoter, None, Some(&["dev", "staging"]));
        assert!(authorize(&p, Action::Promote, Some("shop"), Some("dev")).is_ok());
        assert!(authorize(&p, Action::Approve, None, Some("staging")).is_ok());
        let denied = authorize(&p, Action::Promote, Some("shop"), Some("prod")).unwrap_err();
        assert_eq!(
            denied.reason,
            "token \"t\" (promoter) may promote only on Stages dev, staging, not \"prod\""
        );
        assert!(authorize(&p, Action::Abort, Some("shop"), None).is_err());
        // Reading is not limited by the Stage list.
        assert!(authorize(&p, Action::Read, None, None).is_ok());
    }

    #[test]
    fn a_project_token_acts_in_its_project_only() {
        let admin = token(Role::Admin, Some("shop"), None);
        assert!(authorize(&admin, Action::Alias, Some("shop"), None).is_ok());
        assert!(authorize(&admin, Action::Read, Some("bank"), None).is_err());
        assert!(authorize(&admin, Action::Read, None, None).is_err());
        assert!(authorize(&admin, Action::ServerInfo, None, None).is_ok());
        let denied = authorize(&admin, Action::ManageTokens, Some("shop"), None).unwrap_err();
        assert!(denied.reason.contains("tokens are managed"), "{denied}");
    }

    #[test]
    fn stages_belong_to_promoters_and_anonymous_to_viewers() {
        assert_eq!(
            Principal::token("t", Role::Admin, None, Some(vec!["dev".into()])),
            Err(InvalidPrincipal::StagesWithoutPromoter(Role::Admin))
        );
        assert_eq!(
            Principal::token("t", Role::Promoter, None, Some(vec![])),
            Err(InvalidPrincipal::NoStages)
        );
        assert!(Principal::anonymous(Role::Promoter).is_err());
        assert!(Principal::anonymous(Role::Admin).is_err());
        let anon = Principal::anonymous(Role::Viewer).unwrap();
        assert!(authorize(&anon, Action::Read, None, None).is_ok());
        let denied = authorize(&anon, Action::Promote, None, Some("dev")).unwrap_err();
        assert!(
            denied.unauthenticated && denied.reason.contains("send a token"),
            "{denied}"
        );
        assert_eq!(anon.actor(), "anonymous");
        assert_eq!(token(Role::Viewer, None, None).actor(), "token:t");
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Viewer), Just(Role::Promoter), Just(Role::Admin)]
    }

    fn action() -> impl Strategy<Value = Action> {
        proptest::sample::select(Action::ALL.to_vec())
    }

    fn name() -> impl Strategy<Value = String> {
        proptest::sample::select(vec!["dev".to_string(), "staging".into(), "prod".into(), "shop".into()])
    }

    fn any_token() -> impl Strategy<Value = Principal> {
        (
            role(),
            proptest::option::of(name()),
            proptest::option::of(proptest::collection::vec(name(), 1..3)),
        )
            .prop_map(|(role, project, stages)| {
                let stages = stages.filter(|_| role == Role::Promoter);
                Principal::token("t", role, project, stages).unwrap()
            })
    }

    proptest! {
        #[test]
        fn viewers_and_anonymous_never_write(
            action in proptest::sample::select(WRITES.to_vec()),
            project in proptest::option::of(name()),
            stage in proptest::option::of(name()),
        ) {
            prop_assert!(authorize(&token(Role::Viewer, None, None), action, project.as_deref(), stage.as_deref()).is_err());
            prop_assert!(authorize(&Principal::anonymous(Role::Viewer).unwrap(), action, project.as_deref(), stage.as_deref()).is_err());
        }

        #[test]
        fn an_allowed_call_is_within_the_tokens_role_project_and_stages(
            p in any_token(),
            action in action(),
            project in proptest::option::of(name()),
            stage in proptest::option::of(name()),
        ) {
            if authorize(&p, action, project.as_deref(), stage.as_deref()).is_ok() {
                prop_assert!(p.role >= action.needs());
                if action != Action::ServerInfo && let Some(mine) = &p.project {
                    prop_assert_eq!(project.as_ref(), Some(mine));
                    prop_assert!(action != Action::ManageTokens);
                }
                if let (Some(allowed), true) = (&p.stages, action.on_a_stage()) {
                    prop_assert!(stage.as_ref().is_some_and(|s| allowed.contains(s)));
                }
            }
        }

        #[test]
        fn an_unlimited_admin_may_do_everything(
            action in action(),
            project in proptest::option::of(name()),
            stage in proptest::option::of(name()),
        ) {
            prop_assert!(authorize(&token(Role::Admin, None, None), action, project.as_deref(), stage.as_deref()).is_ok());
            prop_assert!(authorize(&Principal::local(), action, project.as_deref(), stage.as_deref()).is_ok());
        }
    }
}
