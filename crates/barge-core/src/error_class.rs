//! The classes every edge crate sorts its errors into, so callers (retry loops, status,
//! metrics) branch on one small vocabulary instead of on each crate's variants.

use std::fmt;

/// What kind of failure an error is, and so what a caller should do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// May succeed if tried again later (network, timeouts, 5xx, a busy database).
    Transient,
    /// The remote asked us to slow down (HTTP 429); retry after its delay.
    RateLimited,
    /// Credentials are missing or refused; retrying without new ones will not help.
    Auth,
    /// The caller is known but its role or scope does not allow the call (an API token that
    /// is not an admin's, or limited to another project or Stage); only new rights help.
    Forbidden,
    /// The repository, tag, chart or ref does not exist.
    NotFound,
    /// A write lost a race with a concurrent one: what the writer read is stale (Kubernetes'
    /// 409 on an optimistic-concurrency update or a create of an existing object, a row
    /// another writer made first). Re-read, then try again or give way.
    Conflict,
    /// Changes that cannot be combined with what a concurrent writer made of the same lines
    /// (a git rebase that stops on a conflict). Trying again replays the same conflict; a
    /// person must reconcile them. Not a [`ErrorClass::Conflict`]: nothing here is stale.
    MergeConflict,
    /// The request or the answer is unusable (bad configuration, bad data); a person must act.
    Invalid,
}

impl ErrorClass {
    /// The stable, low-cardinality name used in messages, status and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::Auth => "auth",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::NotFound => "not-found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::MergeConflict => "merge-conflict",
            ErrorClass::Invalid => "invalid",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_their_serialized_form() {
        for class in [
            ErrorClass::Transient,
            ErrorClass::RateLimited,
            ErrorClass::Auth,
            ErrorClass::Forbidden,
            ErrorClass::NotFound,
            ErrorClass::Conflict,
            ErrorClass::MergeConflict,
            ErrorClass::Invalid,
        ] {
            assert_eq!(serde_json::to_value(class).unwrap(), class.as_str());
            assert_eq!(class.to_string(), class.as_str());
        }
    }
}
