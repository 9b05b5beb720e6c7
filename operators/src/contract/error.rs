//! Operator errors (a class, a retry hint and a reason a human can act on) and configuration
//! problems.

use std::time::Duration;

use radstream_schemas::ErrorClass;

/// What the runtime should do with a failed envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// A transient failure: run the operator again on this envelope, after `after` if given.
    Retry {
        /// Suggested delay before the next attempt.
        after: Option<Duration>,
    },
    /// Retrying will not help: send the envelope to the dead-letter topic.
    DeadLetter,
}

/// An operator's failure on one envelope.
///
/// `reason` names the object by its key or UIDs and says what to do; it must never contain
/// patient data (names, IDs, dates, accession numbers, free text from the data set).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {reason}", class = .class.as_str())]
pub struct OperatorError {
    /// Bounded error class (a metric label).
    pub class: ErrorClass,
    /// Retry or dead-letter.
    pub retry: RetryHint,
    /// What went wrong, for a human.
    pub reason: String,
    /// Attempts already made inside the operator (operators that retry internally, like the
    /// STOW sink, report theirs here).
    pub attempts: u32,
}

impl OperatorError {
    /// A failure that retrying will not fix.
    pub fn dead_letter(class: ErrorClass, reason: impl Into<String>) -> Self {
        Self { class, retry: RetryHint::DeadLetter, reason: reason.into(), attempts: 1 }
    }

    /// A transient failure.
    pub fn retry(class: ErrorClass, reason: impl Into<String>, after: Option<Duration>) -> Self {
        Self { class, retry: RetryHint::Retry { after }, reason: reason.into(), attempts: 1 }
    }

    /// Sets the number of attempts made.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }
}

/// A configuration problem: the key that is wrong and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// Dotted path of the key, for example `operators[1].url`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { key: key.into(), problem: problem.into() }
    }

    /// Prefixes the key with the path of the enclosing section.
    pub fn within(mut self, prefix: &str) -> Self {
        self.key = if self.key.is_empty() { prefix.to_string() } else { format!("{prefix}.{}", self.key) };
        self
    }
}
