//! The `wharf` binary's library: the CLI ([`cli`]), the HTTP server ([`server`]) with its one dispatch path
//! ([`dispatch`]), multipart forms ([`form`]), the management API ([`api`]), blob serving ([`serve`]), authentication
//! ([`auth`]), the OCI `/v2/` mount ([`v2`]), logs and metrics ([`observe`]), and maintenance (retention, GC,
//! promotion) with its low-priority threads ([`background`]).

pub mod api;
pub mod auth;
pub mod background;
pub mod bearer;
pub mod cli;
pub mod dispatch;
pub mod error;
pub mod form;
pub mod gc;
pub mod observe;
pub mod promotion;
pub mod remote;
pub mod retention;
pub mod serve;
pub mod server;
pub mod v2;

pub use server::{App, run};
