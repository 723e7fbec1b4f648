//! The org file's top level, YAML parsing, and errors that name the file, line and field.

use portcullis_core::{AuthorizationServer, Client};
use serde::{Deserialize, Serialize};

/// An org file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgDocument {
    /// Format version; 1 (the only one so far) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default)]
    pub authorization_servers: Vec<AuthorizationServer>,
    #[serde(default)]
    pub clients: Vec<Client>,
}

/// A problem in an org file: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// The field, e.g. `authorizationServers[0].policies[1].rules[0].scopes`.
    pub path: String,
    pub message: String,
}

impl FileError {
    pub fn at_path(path: impl Into<String>, message: impl Into<String>) -> FileError {
        FileError {
            line: None,
            column: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: ")?,
            (Some(l), None) => write!(f, "line {l}: ")?,
            _ => {}
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Largest org file accepted.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Parses and validates an org file; every problem found is returned at once.
pub fn parse(source: &str) -> Result<OrgDocument, Vec<FileError>> {
    if source.len() > MAX_FILE_BYTES {
        return Err(vec![FileError::at_path("", "the file is larger than 4 MiB")]);
    }
    let doc: OrgDocument = serde_saphyr::from_str(source).map_err(|e| vec![yaml_error(source, &e)])?;
    if let Some(v) = doc.version
        && v != 1
    {
        return Err(vec![FileError::at_path(
            "version",
            format!("unsupported version {v}; this release reads version 1"),
        )]);
    }
    let mut errors = super::validate::document(&doc);
    super::validate::locate(source, &mut errors);
    if errors.is_empty() { Ok(doc) } else { Err(errors) }
}

/// A YAML parse error as a [`FileError`] with its line. Errors raised by serde itself
/// (an unknown field) carry no position; the line of the offending key is then found by
/// looking for it as a mapping key in the source.
pub fn yaml_error(source: &str, e: &serde_saphyr::Error) -> FileError {
    let text = e.to_string();
    // The library's message may repeat the position on later lines; the first names the field.
    let message = text.lines().next().unwrap_or(&text).to_owned();
    let (mut line, mut column) = match e.location() {
        Some(l) => (Some(l.line()), Some(l.column())),
        None => (None, None),
    };
    if line.is_none()
        && let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        && let Some((l, c)) = key_position(source, field)
    {
        (line, column) = (Some(l), Some(c));
    }
    FileError {
        line,
        column,
        path: String::new(),
        message,
    }
}

/// Line and column (1-based) of the first mapping key `key:` in a YAML source, for errors
/// that serde raises without a position.
pub fn key_position(source: &str, key: &str) -> Option<(u64, u64)> {
    let needle = format!("{key}:");
    source.lines().enumerate().find_map(|(n, l)| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        t.starts_with(&needle)
            .then(|| (n as u64 + 1, (l.len() - t.len()) as u64 + 1))
    })
}

pub(crate) fn to_yaml(doc: &OrgDocument) -> String {
    serde_saphyr::to_string(doc).unwrap_or_else(|e| format!("# export failed: {e}\n"))
}
