//! Why the emulator could not start.

use std::{io, net::SocketAddr, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read emulator config {path}: {source}")]
    ReadConfig { path: PathBuf, source: io::Error },
    #[error("invalid emulator config: {0}")]
    ParseConfig(#[from] yaml_serde::Error),
    #[error("invalid emulator config: {0}")]
    InvalidConfig(String),
    #[error(
        "refusing to listen on {0}: the emulator's /_emulator endpoints have no authentication, so it serves loopback only"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}
