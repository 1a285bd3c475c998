//! Reading a plugin's config: JSON text in, the author's type out, and every error a
//! one-line message that names the offending field.

use serde::de::DeserializeOwned;

/// Parses `text` into `T`.
///
/// Blank text reads as `{}`, so a plugin whose fields all have defaults needs no
/// config at all. Errors name the field path, e.g.
/// `http_config.basic_auth.username: invalid type: integer `1`, expected a string at line 1 column 52`.
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })?;
    // Trailing characters after the object are an error too, as serde_json::from_str has it.
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        inner: Inner,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        count: u32,
    }

    #[test]
    fn errors_name_the_field_path() {
        let err = parse::<Outer>(r#"{"inner":{"count":"x"}}"#).unwrap_err();
        assert!(err.starts_with("inner.count: invalid type"), "{err}");
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse::<Outer>(r#"{"inner":{"cnt":1}}"#).unwrap_err();
        assert!(err.contains("unknown field `cnt`"), "{err}");
    }

    #[test]
    fn blank_text_reads_as_empty_object() {
        assert_eq!(parse::<Outer>("  ").unwrap().inner.count, 0);
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(parse::<Outer>("{} x").is_err());
        assert!(parse::<Outer>("not json").is_err());
    }
}
