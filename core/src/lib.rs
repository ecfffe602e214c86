//! nixwire-core
#![forbid(unsafe_code)]
#![deny(missing_docs)]
pub mod machines;
