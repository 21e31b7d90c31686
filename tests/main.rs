//! The integration tests, linked into one binary (faster to build on small machines).

mod support;

mod build;
