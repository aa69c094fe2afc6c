//! `kubectl entra`: lease Entra ID credentials, renew and revoke them, and see pools and the
//! operator, from a terminal. kubectl runs any `kubectl-<name>` binary on the PATH as `kubectl
//! <name>`; this one reads the kubeconfig the way kubectl does.

mod connect;
mod credentials;
mod error;
mod lease;
mod leases;
mod output;
mod pool_lookup;
mod pools;
mod renew;
mod revoke;
mod status;
mod table;
mod wait;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use connect::KubeArgs;
use error::PluginError;
use output::OutputArgs;

/// Lease Microsoft Entra ID credentials from entra-operator's pools.
#[derive(Parser)]
#[command(name = "kubectl entra", bin_name = "kubectl entra", version)]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lease a user of POOL, wait until its credential is issued and print it.
    Lease(lease::LeaseArgs),
    /// List leases, with their user, phase, time left and why one waits or failed.
    Leases(leases::LeasesArgs),
    /// Renew a lease now (up to its pool's maxTTL) and print the new expiry.
    Renew(renew::RenewArgs),
    /// End a lease: its password is scrambled, its sessions revoked, its Secret deleted.
    Revoke(revoke::RevokeArgs),
    /// Print the credential a lease holds now.
    Creds(CredsArgs),
    /// List pools, with their users available, leased and unleasable, and each user's problem.
    Pools(pools::PoolsArgs),
    /// Check the installation: the API server, the CRDs, the operator and its leader.
    Status(status::StatusArgs),
}

#[derive(Args)]
struct CredsArgs {
    /// The lease.
    lease: String,
    #[command(flatten)]
    output: OutputArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), PluginError> {
    entra_operator::tls::install_crypto_provider();
    let lists = matches!(cli.command, Command::Leases(_) | Command::Pools(_));
    if cli.kube.all_namespaces && !lists {
        return Err(PluginError::Usage(
            "-A (--all-namespaces) applies to `leases` and `pools` only; name the namespace with -n"
                .to_owned(),
        ));
    }
    let target = cli.kube.connect().await?;
    match cli.command {
        Command::Lease(args) => lease::run(&target, args).await,
        Command::Leases(args) => leases::run(&target, args).await,
        Command::Renew(args) => renew::run(&target, args).await,
        Command::Revoke(args) => revoke::run(&target, args).await,
        Command::Creds(args) => {
            let lease = credentials::active_lease(&target, &args.lease).await?;
            let held = credentials::read(&target, &lease).await?;
            output::print_credentials(&held, &args.output)
        }
        Command::Pools(args) => pools::run(&target, args).await,
        Command::Status(args) => status::run(&target, args).await,
    }
}

/// A `--wait`-style duration flag: Go syntax (`90s`, `2m`), as in the CRDs.
fn parse_wait(text: &str) -> Result<Duration, String> {
    entra_operator::duration::parse_duration(text).map_err(|error| error.to_string())
}
