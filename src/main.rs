use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use entra_operator::controller::{self, Settings};
use entra_operator::graph::{EndpointOverrides, GraphClient, GraphClientConfig};
use entra_operator::telemetry::{self, LogFormat};
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
    /// Run the controllers against the cluster of the kubeconfig or the in-cluster config.
    Run(RunArgs),
    /// Print both CustomResourceDefinitions as YAML.
    Crds,
}

#[derive(Args)]
struct RunArgs {
    /// Kubeconfig file; without it, $KUBECONFIG, ~/.kube/config or the in-cluster config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// The operator's own namespace, where it records which lease holds which user.
    #[arg(long, env = "POD_NAMESPACE", default_value = "entra-operator")]
    operator_namespace: String,
    /// Override the sign-in authority of every cloud (sovereign or private endpoints).
    #[arg(long, env = "ENTRA_AUTHORITY_HOST")]
    authority_host: Option<String>,
    /// Override the Microsoft Graph root of every cloud (e.g. https://dod-graph.microsoft.us).
    #[arg(long, env = "ENTRA_GRAPH_ENDPOINT")]
    graph_endpoint: Option<String>,
    /// Reconciles running at once, per controller.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Total time the Graph client keeps retrying a throttled or failing call.
    #[arg(long, default_value = "120", value_parser = parse_seconds)]
    graph_retry_seconds: Duration,
    /// Log filter, e.g. info or entra_operator=debug.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Name of this instance in events (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    tls::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crds => print_crds(),
        Command::Run(args) => run(args).await,
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

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init(&args.log_level, args.log_format)?;
    let endpoints = EndpointOverrides::parse(
        args.authority_host.as_deref(),
        args.graph_endpoint.as_deref(),
    )?;
    let mut graph_config = GraphClientConfig::default();
    graph_config.retry.max_elapsed = args.graph_retry_seconds;
    let graph = GraphClient::new(graph_config)?;
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(config)?;
    let version = client.apiserver_version().await?;
    tracing::info!(kubernetes = %version.git_version, version = env!("CARGO_PKG_VERSION"), "starting");
    let settings = Settings {
        claims_namespace: args.operator_namespace,
        watch_namespace: args.namespace,
        endpoints,
        graph,
        concurrency: args.concurrency,
        instance: args.instance,
    };
    controller::run(client, settings, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C: in-flight reconciles finish, nothing new starts.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
