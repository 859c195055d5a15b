//! Pools of several agents (docs/pool.md): the pool secret that hosts
//! authenticate each other with, the names of the host-to-host calls, and
//! the master's backlog of committed batches that feeds the members'
//! copies of the database. Pure, except the secret file's I/O.

pub mod backlog;
pub mod emergency;
pub mod peer;
pub mod secret;
