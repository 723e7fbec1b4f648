//! The `portcullis` binary's library half: configuration, wiring of stores and servers,
//! and the demo sandbox. `main.rs` holds only the command line; integration tests call
//! these functions to start real servers on ephemeral ports.
//!
//! It must never hold protocol logic (that is `portcullis-idp`) or SQL (`portcullis-store`).

pub mod config;
pub mod demo;
pub mod demo_backend;
pub mod runtime;

/// An error for the operator: what went wrong, and what to do next.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl From<portcullis_store::StoreError> for CliError {
    fn from(e: portcullis_store::StoreError) -> Self {
        CliError::new(e.to_string()).hint("check the database URL and that the database is running")
    }
}

impl From<portcullis_idp::view::ViewError> for CliError {
    fn from(e: portcullis_idp::view::ViewError) -> Self {
        let hint = match &e {
            portcullis_idp::view::ViewError::Key(_) => {
                "the master key must be the one the keys were sealed with (PORTCULLIS_MASTER_KEY or <data-dir>/master.key)"
            }
            _ => "check the database URL and that the database is running",
        };
        CliError::new(e.to_string()).hint(hint)
    }
}

impl From<portcullis_idp::orgfile::ApplyError> for CliError {
    fn from(e: portcullis_idp::orgfile::ApplyError) -> Self {
        match e {
            portcullis_idp::orgfile::ApplyError::Invalid(errs) => CliError::new(format!(
                "the org file is not valid:\n{}",
                errs.iter()
                    .map(|e| format!("  {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
            .hint("fix the fields named above and run again; `portcullis export` shows a valid file"),
            other => CliError::new(other.to_string()),
        }
    }
}
