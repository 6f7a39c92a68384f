//! The engine's errors, each with the [`ErrorClass`] its callers branch on (none for a fault
//! in barge itself): the API answers
//! with the HTTP status of the class (barge-server's api.rs), the CLI prints the message.

use barge_core::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The call cannot be done as asked (a bad alias, a Stage without verification, Freight
    /// that is not available there); the caller must change it.
    #[error("{0}")]
    Invalid(String),
    /// A Stage, Freight, promotion, project or Warehouse that is not there.
    #[error("{0}")]
    NotFound(String),
    /// The call collides with the state (a Stage still promoting).
    #[error("{0}")]
    Conflict(String),
    /// The caller is nobody the server knows (anonymous where a token is needed, or an
    /// unknown or revoked token): a valid token might be allowed.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but its role or scope does not allow the call ([`crate::access`]).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed; its class says whether it is unreachable, a conflict or corrupt.
    #[error(transparent)]
    Store(#[from] barge_store::StoreError),
    /// A registry client could not be made (a bad TLS setting, an unreadable certificate).
    #[error(transparent)]
    Registry(#[from] barge_registry::RegistryError),
    /// What the engine was doing when `cause` failed; the class is the cause's. The message
    /// holds both (`set-freight-alias of F: <cause>`), so the cause is not also a `source`
    /// (a caller printing the chain would show it twice).
    #[error("{context}: {cause}")]
    Context { context: String, cause: Box<EngineError> },
    /// A fault in barge itself (what it stored or made cannot be read back).
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// What kind of failure it is; `None` for a fault in barge itself, which neither the
    /// caller nor a retry can mend (the API answers 500).
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            EngineError::Invalid(_) => Some(ErrorClass::Invalid),
            EngineError::NotFound(_) => Some(ErrorClass::NotFound),
            EngineError::Conflict(_) => Some(ErrorClass::Conflict),
            EngineError::Unauthenticated(_) => Some(ErrorClass::Auth),
            EngineError::Forbidden(_) => Some(ErrorClass::Forbidden),
            EngineError::Store(e) => Some(e.class()),
            EngineError::Registry(e) => Some(e.class()),
            EngineError::Context { cause, .. } => cause.class(),
            EngineError::Internal(_) => None,
        }
    }

    /// This error as the cause of what the engine was doing (`context`).
    pub fn within(self, context: impl Into<String>) -> EngineError {
        EngineError::Context {
            context: context.into(),
            cause: Box::new(self),
        }
    }
}

/// An anonymous caller's refusal asks for a token; anyone else's is forbidden.
impl From<barge_core::authz::Denied> for EngineError {
    fn from(denied: barge_core::authz::Denied) -> Self {
        if denied.unauthenticated {
            EngineError::Unauthenticated(denied.reason)
        } else {
            EngineError::Forbidden(denied.reason)
        }
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(e: serde_json::Error) -> Self {
        EngineError::Internal(e.to_string())
    }
}

/// `Err(EngineError::Invalid(format!(...)))`.
macro_rules! invalid {
    ($($arg:tt)*) => {
        Err($crate::error::EngineError::Invalid(format!($($arg)*)))
    };
}

/// `Err(EngineError::NotFound(format!(...)))`.
macro_rules! not_found {
    ($($arg:tt)*) => {
        Err($crate::error::EngineError::NotFound(format!($($arg)*)))
    };
}

pub(crate) use {invalid, not_found};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_within_context_keeps_its_class_and_message() {
        let unreachable = barge_store::StoreError::Connect {
            url: "postgres://db".into(),
            message: "connection refused".into(),
        };
        let e = EngineError::from(unreachable).within("set-freight-alias of abc");
        assert_eq!(e.class(), Some(ErrorClass::Transient));
        assert_eq!(
            e.to_string(),
            "set-freight-alias of abc: cannot open the store postgres://db: connection refused"
        );
        assert_eq!(EngineError::Internal("x".into()).within("y").class(), None);
    }
}
