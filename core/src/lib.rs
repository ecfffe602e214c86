//! nixwire-core
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod machines;
pub mod nar;
pub mod serve;
pub mod wire;
