//! The `wharf` binary's library: the CLI ([`cli`]), the HTTP server ([`server`]) with its one dispatch path
//! ([`dispatch`]), blob serving ([`serve`]), authentication ([`auth`]), and logs and metrics ([`observe`]).

pub mod auth;
pub mod cli;
pub mod dispatch;
pub mod error;
pub mod observe;
pub mod serve;
pub mod server;

pub use server::{App, run};
