//! People: the directory (users, groups, lifecycle), passwords, TOTP factors and the
//! password check of sign-in with its lockout and rate limits.
//!
//! Owns the rules of who may sign in and what a lifecycle change must revoke. It must
//! never tell a caller whether a login exists (every failure looks the same, and costs
//! the same argon2 check), never log a password, code or secret, and never run argon2 on
//! a request thread.

pub mod directory;
pub mod password;
pub mod signin;
pub mod totp;

pub use directory::DirectoryError;
pub use signin::{SignInError, SignInLimits};
