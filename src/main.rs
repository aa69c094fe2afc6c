use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use clap::{Args, Parser, Subcommand};
use entra_operator::api::Cloud;
use entra_operator::controller::{self, Settings, WatchScope};
use entra_operator::graph::{Budget, Budgets, EndpointOverrides, GraphClient, GraphClientConfig};
use entra_operator::health::{self, Readiness};
use entra_operator::leader::LeaderElection;
use entra_operator::metrics_endpoint::{self, CertificateSource, Security};
use entra_operator::secret_types::SecretTypes;
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
    Run(Box<RunArgs>),
    /// Print both CustomResourceDefinitions as YAML.
    Crds,
}

#[derive(Args)]
struct RunArgs {
    /// Kubeconfig file; without it, $KUBECONFIG, ~/.kube/config or the in-cluster config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Watch only these namespaces, comma-separated (default: all namespaces). With a list, the
    /// operator needs rights in those namespaces only.
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
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
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// The longest a Graph call waits in its worker for its turn (Graph unavailable, throttled)
    /// before it fails as GraphUnavailable. Lease and pool work never waits more than a second
    /// in a worker: its request is parked in the app's line and the worker goes on.
    #[arg(long, default_value = "120", value_parser = parse_seconds)]
    graph_retry_seconds: Duration,
    /// Graph writes per app in one tenant, COUNT/DURATION (Entra's limit: 3000/150s).
    #[arg(long, env = "GRAPH_APP_TENANT_WRITES", default_value = "3000/150s")]
    graph_app_tenant_writes: Budget,
    /// Graph writes per tenant across all apps (Entra's limit: 18000/5m).
    #[arg(long, env = "GRAPH_TENANT_WRITES", default_value = "18000/5m")]
    graph_tenant_writes: Budget,
    /// Graph writes per app across all tenants (Entra's limit: 35000/5m).
    #[arg(long, env = "GRAPH_APP_WRITES", default_value = "35000/5m")]
    graph_app_writes: Budget,
    /// Graph read resource units per app in one tenant (Entra's limit: 3500/10s under 50 users,
    /// 5000/10s up to 500, 8000/10s above).
    #[arg(long, env = "GRAPH_APP_TENANT_READ_UNITS", default_value = "3500/10s")]
    graph_app_tenant_read_units: Budget,
    /// The percentage of each write budget only ending credentials may spend.
    #[arg(long, env = "GRAPH_END_RESERVE_PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=90))]
    graph_end_reserve_percent: u8,
    /// Log filter, e.g. info or entra_operator=debug.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Name of this instance in events and in leader election (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
    /// Address of /metrics: HTTPS, for callers the API server authenticates and authorizes (get
    /// on the non-resource URL /metrics).
    #[arg(long, env = "METRICS_BIND_ADDRESS", default_value = "0.0.0.0:8443")]
    metrics_bind_address: SocketAddr,
    /// Serve /metrics over HTTPS to authorized callers only. false: plain HTTP to anyone, for
    /// local development only.
    #[arg(long, env = "METRICS_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    metrics_secure: bool,
    /// PEM certificate (chain) of /metrics, e.g. cert-manager's tls.crt, read again when it
    /// changes. Without it, a self-signed certificate made at start.
    #[arg(long, env = "METRICS_CERT_FILE", requires = "metrics_key_file")]
    metrics_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of --metrics-cert-file.
    #[arg(long, env = "METRICS_KEY_FILE", requires = "metrics_cert_file")]
    metrics_key_file: Option<std::path::PathBuf>,
    /// Address of /livez and /readyz: plain HTTP without authentication, for the kubelet.
    #[arg(
        long,
        env = "HEALTH_PROBE_BIND_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    health_probe_bind_address: SocketAddr,
    /// Run only while holding the leader Lease, so that one of several replicas acts.
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    leader_elect: bool,
    /// Name of the leader Lease, in the operator namespace.
    #[arg(long, default_value = "entra-operator-leader")]
    leader_election_lease_name: String,
    /// How long a leader's Lease lasts without renewal; a standby takes over after it.
    #[arg(long, default_value_t = 15)]
    leader_election_lease_duration_seconds: u64,
    /// After SIGTERM, how long in-flight reconciles may take before the process exits without
    /// them (an interrupted step is left for the next leader, as after a crash).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    shutdown_timeout_seconds: Duration,
    /// The national clouds pools may issue in, comma-separated (revocations of credentials
    /// already issued go wherever they were issued).
    #[arg(
        long,
        env = "ALLOWED_CLOUDS",
        value_delimiter = ',',
        default_value = "AzurePublic,AzureUSGovernment,AzureChina",
        value_parser = parse_cloud
    )]
    allowed_clouds: Vec<Cloud>,
    /// Serve ClusterEntraDynamicSecrets (and read namespaces' labels). One operator per cluster
    /// should; others, serving their own namespaces, turn it off.
    #[arg(long, env = "CLUSTER_POOLS", default_value_t = true, action = clap::ArgAction::Set)]
    cluster_pools: bool,
    /// The types a lease's Secret may have, comma-separated (never
    /// kubernetes.io/service-account-token).
    #[arg(
        long,
        env = "ENTRA_LEASE_SECRET_TYPES",
        default_value = entra_operator::secret_types::DEFAULT_TYPES,
        value_parser = SecretTypes::parse
    )]
    lease_secret_types: SecretTypes,
    /// The shortest spacing of rotations a kms.hanzo.ai/rotate request may force on a continuous
    /// lease (a Go-style duration): an overlap shorter than it is clamped to it.
    #[arg(
        long,
        env = "MIN_FORCED_ROTATION_INTERVAL",
        default_value = "1m",
        value_parser = parse_go_duration
    )]
    min_forced_rotation_interval: Duration,
}

fn parse_cloud(text: &str) -> Result<Cloud, String> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_owned())).map_err(|_| {
        format!("unknown cloud {text:?}: expected AzurePublic, AzureUSGovernment or AzureChina")
    })
}

fn parse_go_duration(text: &str) -> Result<Duration, String> {
    entra_operator::duration::parse_duration(text).map_err(|e| e.to_string())
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
        Command::Run(args) => run(*args).await,
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
    graph_config.budgets = Budgets {
        app_tenant_writes: args.graph_app_tenant_writes,
        tenant_writes: args.graph_tenant_writes,
        app_writes: args.graph_app_writes,
        app_tenant_read_units: args.graph_app_tenant_read_units,
        end_reserve: f64::from(args.graph_end_reserve_percent) / 100.0,
        ..Budgets::default()
    };
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
    let readiness = Arc::new(Readiness::default());
    let probes = health::serve(args.health_probe_bind_address, readiness.clone()).await?;
    tracing::info!(address = %probes, "serving /livez and /readyz");
    let security = metrics_security(&args, &client);
    let scrapes = metrics_endpoint::serve(args.metrics_bind_address, security).await?;
    tracing::info!(address = %scrapes, secure = args.metrics_secure, "serving /metrics");
    let shutdown = shutdown_signal().boxed().shared();
    let settings = Settings {
        claims_namespace: args.operator_namespace.clone(),
        scope: WatchScope::of(&args.namespace),
        endpoints,
        graph,
        concurrency: args.concurrency,
        instance: args.instance.clone(),
        readiness: readiness.clone(),
        allowed_clouds: args.allowed_clouds.clone(),
        cluster_pools: args.cluster_pools,
        lease_secret_types: args.lease_secret_types.clone(),
        min_forced_rotation_interval: args.min_forced_rotation_interval,
    };
    if !args.leader_elect {
        // The only replica is the acting one.
        entra_operator::metrics::metrics().leader.set(1);
        let controllers = controller::run(client, settings, shutdown.clone());
        let finished = bounded(controllers, shutdown, args.shutdown_timeout_seconds).await;
        return stopped(finished);
    }
    // A standby is ready: it is healthy and waiting, which is its job.
    readiness.set(true);
    let election = LeaderElection {
        namespace: args.operator_namespace,
        lease_name: args.leader_election_lease_name,
        identity: args
            .instance
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        lease_duration: Duration::from_secs(args.leader_election_lease_duration_seconds),
    };
    let mut leadership = tokio::select! {
        leadership = election.acquire(client.clone()) => leadership?,
        _ = shutdown.clone() => return Ok(()),
    };
    readiness.set(false);
    let controllers = controller::run(client, settings, shutdown.clone());
    tokio::select! {
        finished = bounded(controllers, shutdown, args.shutdown_timeout_seconds) => {
            leadership.release().await;
            stopped(finished)
        }
        _ = leadership.lost() => {
            // Another replica may act from now on (or will soon: the renew deadline passed): stop
            // at once, mid-reconcile if need be. Every step is safe to interrupt (invariant I2),
            // and the pod restarts as a standby.
            tracing::error!("lost leadership; exiting");
            std::process::exit(1);
        }
    }
}

fn metrics_security(args: &RunArgs, client: &kube::Client) -> Security {
    if !args.metrics_secure {
        return Security::Insecure;
    }
    let certificate = match (&args.metrics_cert_file, &args.metrics_key_file) {
        (Some(cert), Some(key)) => CertificateSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => CertificateSource::SelfSigned,
    };
    Security::Secure {
        client: client.clone(),
        certificate,
    }
}

/// Runs `controllers` until they stop after `shutdown`, or until `timeout` after `shutdown`
/// (reconciles still in Graph retries, say), whichever comes first. Whether they finished.
async fn bounded(
    controllers: impl Future<Output = ()>,
    shutdown: impl Future<Output = ()>,
    timeout: Duration,
) -> bool {
    let deadline = async {
        shutdown.await;
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        () = controllers => true,
        () = deadline => {
            tracing::warn!(?timeout, "in-flight reconciles did not finish within the shutdown timeout; leaving them to the next leader");
            false
        }
    }
}

/// The end of a shutdown. After a timed-out one the process exits at once: work still in flight
/// (Graph retries, spawned tasks) must not hold it up.
fn stopped(finished: bool) -> Result<(), Box<dyn std::error::Error>> {
    tracing::info!("stopped");
    if !finished {
        std::process::exit(0);
    }
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
