//! One test binary for everything that crosses a process or a backend boundary.
//!
//! The `aws` variants need a local AWS emulator: `infra/test.sh` starts one. Run alone, they fail
//! with a message that says how to start it; they never skip.

mod auth;
mod blobs;
mod canary;
mod cli;
mod counters;
mod dev_server;
mod discord;
mod docs;
mod internal_api;
mod items;
mod jobs_api;
mod lambda_watch;
mod lambdas;
mod queues;
mod support;
mod telegram;
mod template;
mod verify_snippet;
mod webhooks;
mod worker;
