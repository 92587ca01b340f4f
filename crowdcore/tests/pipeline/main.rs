//! The pipeline runtime: observer cursors as data, the three-stage flow end to end against the
//! in-memory fake, crashes at every store write, faults, the seed's bugs, the lease.

mod crash;
mod flow;
mod handlers;
mod observer;
mod seed_bugs;
mod support;
