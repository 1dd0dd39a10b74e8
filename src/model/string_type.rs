//! A macro for the many model types that travel as one JSON string: they
//! serialize through `Display`, deserialize through `FromStr` (so a bad value
//! is reported with the JSON path of the field), and document themselves in
//! OpenAPI as a string with a description and an example.

macro_rules! string_type {
    ($ty:ty, $desc:expr, $example:expr) => {
        string_type!($ty, $desc, $example, None::<String>, None);
    };
    // With the pattern and maximum length the document states; the API
    // checks bodies against the document, so `FromStr` must accept every
    // string they allow.
    ($ty:ty, $desc:expr, $example:expr, $pattern:expr, $max:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($desc))
                    .pattern($pattern)
                    .max_length($max)
                    .examples([serde_json::json!($example)])
                    .into()
            }
        }
        impl utoipa::ToSchema for $ty {}
    };
}
