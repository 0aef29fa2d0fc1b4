//! The `auth` family and the authentication every family shares: sign-up, login, refresh,
//! logout, `me`, API keys, service keys, the auth and rate-limit layers.

pub mod error;
pub mod jwt;
pub mod layer;
pub mod routes;
pub mod schemas;
pub mod secrets;
pub mod service;

pub use error::AuthError;
pub use jwt::JwtKeys;
pub use layer::{Guard, Limit, LimitBy};
pub use routes::router;
pub use service::{Accepts, AuthConfig, AuthService};
