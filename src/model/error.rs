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
}

/// A rejected object: one or more broken rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<FieldError>);

impl Invalid {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// The first field named, for tests and logs.
    pub fn first_field(&self) -> &str {
        self.0.first().map(|e| e.field.as_str()).unwrap_or("")
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
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
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
