//! HTTP-level tests of citygrid-server: the router driven in-process (`tower::ServiceExt::oneshot`)
//! on a fresh database with the demo city and a manual clock.
//!
//! Every test runs on SQLite (`sqlite::...`); with `CITYGRID_TEST_POSTGRES` set to a database URL
//! (e.g. `postgres://postgres@127.0.0.1:5432/citygrid_test`) the same tests also run on
//! PostgreSQL (`postgres::...`), each in a fresh schema of that database.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod helpers;

mod assessment;
mod auth;
mod citizen;
mod evaluation;
mod idempotency;
mod list;
mod loop_test;
mod map;
mod money;
mod open311;
mod openapi;
mod photos;
mod refusals;
mod reports;
