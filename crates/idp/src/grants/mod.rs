//! The token endpoint's grant handlers, one per grant type, behind a registry: the endpoint
//! authenticates the client, then hands the request to the handler registered for its
//! `grant_type`. A grant is switched off by not registering it.

mod authorization_code;
mod client_credentials;
mod refresh_token;
pub(crate) mod user_tokens;

use std::future::Future;
use std::pin::Pin;

use portcullis_core::GrantType;

use crate::Idp;
use crate::error::EndpointError;
use crate::http::form::Params;
use crate::view::{ClientView, ServerView};

pub use authorization_code::AuthorizationCode;
pub use client_credentials::ClientCredentials;
pub use refresh_token::RefreshToken;

/// A token request after client authentication.
pub struct GrantRequest<'a> {
    pub idp: &'a Idp,
    pub server: &'a ServerView,
    pub client: &'a ClientView,
    pub params: &'a Params,
}

/// The successful answer of RFC 6749 §5.1.
#[derive(Debug, serde::Serialize)]
pub struct TokenResponse {
    pub token_type: &'static str,
    pub expires_in: i64,
    pub access_token: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

pub type GrantFuture<'a> = Pin<Box<dyn Future<Output = Result<TokenResponse, EndpointError>> + Send + 'a>>;

pub trait GrantHandler: Send + Sync {
    fn grant_type(&self) -> GrantType;
    fn handle<'a>(&'a self, req: GrantRequest<'a>) -> GrantFuture<'a>;
}

pub struct GrantRegistry {
    handlers: Vec<Box<dyn GrantHandler>>,
}

impl GrantRegistry {
    /// The grants this release supports.
    pub fn standard() -> GrantRegistry {
        GrantRegistry {
            handlers: vec![
                Box::new(ClientCredentials),
                Box::new(AuthorizationCode),
                Box::new(RefreshToken),
            ],
        }
    }

    pub fn get(&self, grant: GrantType) -> Option<&dyn GrantHandler> {
        self.handlers
            .iter()
            .find(|h| h.grant_type() == grant)
            .map(|h| h.as_ref())
    }

    pub fn supported(&self) -> impl Iterator<Item = GrantType> + '_ {
        self.handlers.iter().map(|h| h.grant_type())
    }
}
