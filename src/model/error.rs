//! Validation failures that name the field at fault, so the API can answer
//! with RFC 7807 problem JSON and the dashboard can show the message next to
//! the right input.

use serde::Serialize;
use utoipa::ToSchema;

/// One rule broken by one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The JSON path of the offending field, e.g. `remoteIpRanges[1]`.
    pub field: String,
    /// What is wrong, in an admin's words.
    pub message: String,
    /// The other fields of a rule that joins several (`setHeaderValue` is
    /// required with `setHeaderName`), as JSON paths from the object's
    /// root; empty for a rule about this field alone. A merge patch that
    /// breaks such a rule only through a field it does not state
    /// conflicts with the stored object (409) rather than being malformed.
    #[serde(skip)]
    pub joins: Vec<String>,
}

/// A rejected object: one or more broken rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<FieldError>);

impl Invalid {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid(vec![FieldError::new(field, message)])
    }

    /// The first field named, for tests and logs.
    pub fn first_field(&self) -> &str {
        self.0.first().map(|e| e.field.as_str()).unwrap_or("")
    }

    /// Whether a merge patch breaks these rules only together with the
    /// stored object: every broken rule joins fields, and for each, some
    /// field of the join is not stated in `patch`. Such a patch is valid on
    /// its own (its own fields are checked by the document) and cannot be
    /// applied to this state of the object (RFC 5789 §2.2: 409).
    pub fn only_against_stored(&self, patch: &serde_json::Value) -> bool {
        !self.0.is_empty()
            && self.0.iter().all(|e| {
                !e.joins.is_empty()
                    && std::iter::once(&e.field)
                        .chain(&e.joins)
                        .any(|f| !states(patch, f))
            })
    }
}

/// Whether a JSON document states the member at a dotted path (`a.b[2]`
/// reads `a.b`), null included.
fn states(doc: &serde_json::Value, path: &str) -> bool {
    let mut at = doc;
    for seg in path.split('.') {
        let key = seg.split('[').next().unwrap_or(seg);
        match at.get(key) {
            Some(v) => at = v,
            None => return false,
        }
    }
    true
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            joins: vec![],
        }
    }
}

/// Collects broken rules so a request hears about all of them at once.
#[derive(Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Adds the break of a rule that joins `field` with `joins` (paths
    /// from the object's root).
    pub fn joint(&mut self, field: impl Into<String>, joins: &[&str], message: impl Into<String>) {
        let mut e = FieldError::new(field, message);
        e.joins = joins.iter().map(|j| j.to_string()).collect();
        self.0.push(e);
    }

    /// Adds the error when `bad` holds.
    pub fn check(&mut self, bad: bool, field: &str, message: impl Into<String>) {
        if bad {
            self.add(field, message);
        }
    }

    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }
}

/// Checks that an integer lies in an inclusive range.
pub fn in_range<T: PartialOrd + std::fmt::Display>(
    errors: &mut Errors,
    field: &str,
    value: T,
    min: T,
    max: T,
) {
    if value < min || value > max {
        errors.add(
            field,
            format!("must be between {min} and {max} (got {value})"),
        );
    }
}
