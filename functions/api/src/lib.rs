//! Tessera's HTTP API: one axum [`Router`](axum::Router) per API family, over the storage
//! ports. Every router here serves unchanged under `axum::serve` (the dev server) and under
//! `lambda_http::run` (one Lambda per family).

pub mod auth;
pub mod blobs;
pub mod client_ip;
pub mod docs;
pub mod health;
pub mod internal;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod ssrf;
pub mod v1;
