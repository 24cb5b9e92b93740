use std::fmt;

/// What went wrong, in the terms the engine decides on: retry, abort, or resume.
///
/// The engine never matches on message text; adapters map their platform's error
/// codes onto these kinds (the way kube-rs documents its error variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The secret, version, service or host does not exist.
    NotFound,
    /// Someone else changed the resource under us (label moved, etag mismatch, lease held).
    Conflict,
    /// Credentials were refused or lack a permission.
    Permission,
    /// Network failure, throttling or 5xx: the same call may succeed later.
    Temporary,
    /// The plan names something that cannot work (bad key, unsupported mode).
    InvalidConfig,
    /// The platform or resource is in a state this tool refuses to touch.
    Unsupported,
    /// The operation ran and reported failure (rollout failed, command exited non-zero).
    Failed,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Permission => "permission denied",
            ErrorKind::Temporary => "temporarily unavailable",
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Failed => "failed",
        }
    }

    /// Whether repeating the same call can reasonably succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Temporary)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An adapter error: a kind, a message for humans, and optionally the cause.
///
/// Besides its kind an error can say it is temporary (a conflict on an etag that a
/// re-read resolves, a lease another deploy holds) and how long to wait before the
/// same call is worth repeating (a 429's `Retry-After`): the engine retries
/// idempotent steps on exactly that, never on message text.
///
/// Messages must never contain a passphrase; the conformance suite checks that.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    temporary: bool,
    /// What few errors carry, boxed: errors travel inside every `Result`.
    hints: Option<Box<Hints>>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

#[derive(Debug, Default)]
struct Hints {
    retry_after: Option<std::time::Duration>,
    next_step: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            temporary: kind == ErrorKind::Temporary,
            hints: None,
            source: None,
        }
    }

    /// Marks an error of any kind as worth retrying (a lease held by a deploy, an
    /// etag conflict the next read resolves).
    pub fn retryable(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// How long to wait before retrying (a `Retry-After` header); implies
    /// [`Error::retryable`].
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.temporary = true;
        self.hints.get_or_insert_with(Box::default).retry_after = Some(wait);
        self
    }

    /// Whether repeating the same call can reasonably succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The wait the platform asked for, if any.
    pub fn wait_hint(&self) -> Option<std::time::Duration> {
        self.hints.as_ref().and_then(|h| h.retry_after)
    }

    /// The one command that fixes this on the operator's machine (`aws sso login
    /// --profile prod`): the summary lists it under next steps, and the engine
    /// reads an error that has one as the machine's setup, not the plan.
    pub fn with_next_step(mut self, command: impl Into<String>) -> Self {
        self.hints.get_or_insert_with(Box::default).next_step = Some(command.into());
        self
    }

    pub fn next_step(&self) -> Option<&str> {
        self.hints.as_ref().and_then(|h| h.next_step.as_deref())
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with where it happened, keeping the kind.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, m)
    }
    pub fn permission(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permission, m)
    }
    pub fn temporary(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Temporary, m)
    }
    pub fn invalid_config(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, m)
    }
    pub fn unsupported(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, m)
    }
    pub fn failed(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, m)
    }

    /// The whole chain as one line, for reports.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            let s = e.to_string();
            if !out.contains(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = e.source();
        }
        out
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
