//! The agent's shell: HTTP/1.1 listeners (TLS, plain loopback, Unix
//! socket), the routes of the three encodings, the dispatcher with
//! sessions and commits, the role file and the TLS identity.

pub mod agent;
pub mod ha_hosts; // hamulti: the per-host steps of HA on N hosts
pub mod ha_ops;
pub mod http;
pub mod listen;
pub mod mailer;
pub mod membership;
mod migration; // migrate: VM.pool_migrate's effect
pub mod password;
mod peer_calls;
pub mod peers;
pub mod replicate;
pub mod role;
pub mod storage;
pub mod tls;
pub mod vms;
pub mod xhad_launcher;
pub mod xhad_watch;

pub use agent::Agent;
