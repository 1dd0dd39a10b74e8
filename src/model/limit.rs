//! A count or size that may also be `unlimited`, as Exchange's
//! `Unlimited<T>` parameters are.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Unlimited,
    Value(u64),
}

impl Limit {
    pub fn value(&self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Value(v) => Some(*v),
        }
    }

    /// Whether `n` stays within the limit.
    pub fn allows(&self, n: u64) -> bool {
        self.value().is_none_or(|v| n <= v)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Unlimited => f.write_str("unlimited"),
            Limit::Value(v) => write!(f, "{v}"),
        }
    }
}

impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Unlimited => s.serialize_str("unlimited"),
            Limit::Value(v) => s.serialize_u64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a non-negative whole number or \"unlimited\"")
        })? {
            Raw::N(n) => Ok(Limit::Value(n)),
            Raw::S(s) if s.eq_ignore_ascii_case("unlimited") => Ok(Limit::Unlimited),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "'{s}' is not a limit: expected a non-negative whole number or \"unlimited\""
            ))),
        }
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::schema::limit(0, None)
    }
}
impl utoipa::ToSchema for Limit {}

/// Checks a limit against an inclusive range, letting `unlimited` through
/// only where the parameter allows it.
pub fn check_limit(
    errors: &mut super::error::Errors,
    field: &str,
    v: Limit,
    min: u64,
    max: u64,
    unlimited_ok: bool,
) {
    match v {
        Limit::Unlimited if !unlimited_ok => errors.add(field, "cannot be unlimited"),
        Limit::Unlimited => {}
        Limit::Value(n) => super::error::in_range(errors, field, n, min, max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_numbers_and_unlimited() {
        assert_eq!(serde_json::from_str::<Limit>("5").unwrap(), Limit::Value(5));
        assert_eq!(
            serde_json::from_str::<Limit>("\"Unlimited\"").unwrap(),
            Limit::Unlimited
        );
        assert!(serde_json::from_str::<Limit>("\"lots\"").is_err());
        assert!(serde_json::from_str::<Limit>("-1").is_err());
        assert_eq!(
            serde_json::to_string(&Limit::Unlimited).unwrap(),
            "\"unlimited\""
        );
    }
}
