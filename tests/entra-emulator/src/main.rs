//! `entra-emulator --config tenant.yaml [--port N] [--bind 127.0.0.1]`: serves the emulator until
//! SIGINT or SIGTERM, for demos and benchmarks. Prints where it listens on stdout.

use std::{
    io::{IsTerminal, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
};

use clap::Parser;
use entra_emulator::{Config, Emulator};
use tracing_subscriber::EnvFilter;

/// A stateful emulator of Entra ID's token endpoint and Microsoft Graph's user endpoints.
#[derive(Parser)]
#[command(name = "entra-emulator", version)]
struct Args {
    /// The tenant file (see examples/tenant.yaml).
    #[arg(long)]
    config: PathBuf,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Loopback address to listen on; others are refused (the test endpoints have no auth).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("entra-emulator: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_yaml_file(&args.config)?;
    let emulator = Emulator::start_on(config, SocketAddr::new(args.bind, args.port)).await?;
    let base_url = emulator.base_url();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "authority host: {base_url}")?;
    writeln!(stdout, "graph endpoint: {base_url}")?;
    writeln!(stdout, "listening on {}", emulator.addr())?;
    stdout.flush()?;
    drop(stdout);

    wait_for_termination().await?;
    emulator.shutdown().await;
    Ok(())
}

async fn wait_for_termination() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
