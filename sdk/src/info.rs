//! How a plugin presents itself to the host: name, version, description and the
//! JSON Schema of its config. The plugin kind is not here: the export macro sets it.
//! Plain data: never imports the bindings (`glue` converts).

/// A plugin's self-description, returned by [`Detector::info`](crate::Detector::info)
/// and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Short name, e.g. `zscore`.
    pub name: String,
    /// The plugin's own version (semver), informative only.
    pub version: String,
    /// One paragraph for operators.
    pub description: String,
    /// JSON Schema (draft 2020-12) of the config object, as JSON text.
    pub config_schema: String,
}

/// The schema used when a plugin does not give one: any JSON object.
pub const ANY_OBJECT_SCHEMA: &str =
    r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}"#;

impl Info {
    /// A description with the permissive [`ANY_OBJECT_SCHEMA`]; set the real schema
    /// with [`Info::schema`].
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            config_schema: ANY_OBJECT_SCHEMA.to_owned(),
        }
    }

    /// Sets the JSON Schema of the config object (JSON text).
    pub fn schema(mut self, json_schema: impl Into<String>) -> Self {
        self.config_schema = json_schema.into();
        self
    }
}
