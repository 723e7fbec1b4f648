//! The org file's top level, YAML parsing, and errors that name the file, line and field.

pub use portcullis_core::yaml::{FileError, key_position, yaml_error};
use portcullis_core::{AuthorizationServer, Client, GroupSpec, SignInSettings, UserSpec};
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
    /// Password policy, lockout, sign-in rate limits, session length, branding; the
    /// defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<SignInSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSpec>,
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

pub(crate) fn to_yaml(doc: &OrgDocument) -> String {
    serde_saphyr::to_string(doc).unwrap_or_else(|e| format!("# export failed: {e}\n"))
}
