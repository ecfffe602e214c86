//! Flows: the jobs a host runs across stores, as explicit state machines
//! above [`session`](crate::session).
//!
//! A flow decides *which* requests to make and what their answers mean; it
//! makes none itself. A host (the `nixwire` command, a runtime's caller)
//! asks a flow what it wants next, sends that as one batched request through
//! a runtime's `Store`, and hands the answer back; the flow then says what
//! comes next. So a flow is pure like the rest of the core, is tested
//! without any I/O, and every runtime drives it the same way.
//!
//! - [`copy`]: copying a closure from one store to another: the closure
//!   found level by level at the source, what is missing asked of the
//!   destination in one batch, the missing paths in topological order, a
//!   size limit checked before anything moves, and [`NarCheck`](copy::NarCheck)
//!   for each NAR as it streams through.
//! - [`build`]: one derivation built on one machine, Hydra's `buildRemote`
//!   in named phases: its inputs copied there with a [`copy`] plan, the
//!   build, its outputs copied back with another; failures classed by what
//!   a scheduler must do about them.
//! - [`schedule`]: a derivation's closure of builds across a machines pool:
//!   which `.drv` files to read, which outputs are missing, which build
//!   may start on which machine, and what a failure does to the rest.

pub mod build;
pub mod copy;
#[cfg(feature = "machines")]
pub mod schedule;
