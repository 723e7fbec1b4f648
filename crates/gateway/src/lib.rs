//! The Portcullis API gateway: bearer tokens from trusted OIDC issuers verified against
//! cached JWKS (or by introspection), held to per-route scope and claim policies, and
//! requests streamed to upstreams.
//!
//! Modules, in the order a request meets them: `route` (which route), `auth` (which token,
//! which issuer), `jwt` and `jwks` (is it genuine), `policy` (is it enough), `proxy`
//! (forward it), `reject` (every answer the gateway gives itself); `service` ties them
//! together and `config` reads the file. It must never make an outbound call per request
//! in steady state, never pick a verification algorithm from a token's header alone, never
//! trust keys a token offers about itself, and never answer 500 for what a client sent.

pub mod auth;
pub mod config;
pub mod error;
pub mod jwks;
pub mod jwt;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod reject;
pub mod route;
pub mod service;

use std::future::Future;
use std::sync::Arc;

pub use error::TokenError;
pub use jwks::{JwksCache, JwksSettings};
pub use jwt::{IssuerPolicy, Validator, VerifiedToken};
pub use reject::Rejection;
pub use service::{Credential, Explanation, Gateway};

/// The gateway a listener serves, swapped whole by a reload: each request runs on the
/// gateway current when it arrived, so in-flight requests finish on the old routes.
pub type SharedGateway = Arc<arc_swap::ArcSwap<Gateway>>;

/// Serves `gateway` on `listener` until `shutdown` resolves.
pub async fn serve(
    gateway: SharedGateway,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    portcullis_http::serve(
        listener,
        move |peer| {
            let shared = gateway.clone();
            hyper::service::service_fn(move |req| {
                let gw = shared.load_full();
                async move { Ok::<_, std::convert::Infallible>(gw.handle(req, peer).await) }
            })
        },
        shutdown,
    )
    .await
}
