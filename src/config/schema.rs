//! The JSON schema of the configuration, generated from [`Config`] so that
//! the Helm chart's `values.schema.json` (its `config` property) accepts
//! exactly what the webhook accepts. `tests/chart.rs` keeps the checked-in
//! copy equal to this (`make schema` rewrites it).

use super::Config;
use schemars::generate::SchemaSettings;
use serde_json::Value;

/// The schema of a configuration file, self-contained (no `$ref`), so it can
/// be embedded under another schema's `properties`.
pub fn config_schema() -> Value {
    let generator = SchemaSettings::draft07()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Config>().to_value();
    if let Value::Object(map) = &mut schema {
        // Meaningful at a document's root only.
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inlined: a `$ref` would point into the chart's schema, not this one.
    #[test]
    fn schema_has_no_references() {
        let text = config_schema().to_string();
        assert!(!text.contains("$ref"), "{text}");
        assert!(!text.contains("$defs") && !text.contains("definitions"), "{text}");
    }
}
