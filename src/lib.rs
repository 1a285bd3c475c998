//! Whole-system tests, benches and examples live in this package.
