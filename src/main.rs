use std::process::ExitCode;

use clap::{Parser, Subcommand};
use entra_operator::{api, tls};

/// Issues Microsoft Entra ID user credentials as Kubernetes Secrets.
#[derive(Parser)]
#[command(name = "entra-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the current kubeconfig or in-cluster config.
    Run,
    /// Print both CustomResourceDefinitions as YAML.
    Crds,
}

#[tokio::main]
async fn main() -> ExitCode {
    tls::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crds => print_crds(),
        Command::Run => run().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("entra-operator: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_crds() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", api::crds_yaml()?);
    Ok(())
}

/// For now `run` connects to the API server, reports its version and exits.
async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::Client::try_default().await?;
    let version = client.apiserver_version().await?;
    println!("connected to Kubernetes {}", version.git_version);
    Ok(())
}
