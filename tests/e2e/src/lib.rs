//! Tests that cross processes and backends live in `tests/e2e/`: the storage conformance suite,
//! run against the embedded backend and against the AWS backend on a local emulator, and the dev
//! server over HTTP. This library is empty; see `tests/e2e/main.rs`.
