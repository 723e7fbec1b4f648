//! Errors in the YAML files people write (org files, gateway and server configs): the
//! line, the field and what is wrong. Owns turning a parser's error into one of these; it
//! must never read files itself.

/// A problem in a YAML file: where, and what to do about it.
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

impl FileError {
    /// A problem at a known position (from a `serde_saphyr::Spanned` value).
    pub fn at(
        location: &serde_saphyr::Location,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> FileError {
        FileError {
            line: Some(location.line()),
            column: Some(location.column()),
            path: path.into(),
            message: message.into(),
        }
    }
}
