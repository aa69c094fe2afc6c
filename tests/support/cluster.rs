//! Helpers for tests that talk to the shared control plane: CRD installation and namespaces of
//! their own, so that tests running in parallel do not see each other's objects.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

use super::ControlPlane;

/// The CRDs as `entra-operator crds` prints them, committed in `crds/`.
pub const CRDS_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../crds/entra-operator.yaml"
);

/// Applies the committed CRDs once per test binary and waits until both are Established.
pub fn install_crds(control_plane: &ControlPlane) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let apply = control_plane.kubectl(&["apply", "--server-side", "-f", CRDS_FILE]);
        assert!(
            apply.status.success(),
            "the CRDs apply: {}",
            String::from_utf8_lossy(&apply.stderr)
        );
        let wait = control_plane.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/entradynamicsecrets.kms.hanzo.ai",
            "crd/entraleases.kms.hanzo.ai",
        ]);
        assert!(
            wait.status.success(),
            "the CRDs become Established: {}",
            String::from_utf8_lossy(&wait.stderr)
        );
        // Discovery of new resources lags the Established condition by a moment.
        wait_until(Duration::from_secs(30), || {
            control_plane
                .kubectl(&["get", "entraleases", "-A"])
                .status
                .success()
        });
    });
}

/// Creates a namespace with a unique name starting with `prefix`.
pub async fn namespace(client: &kube::Client, prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name }
    }))
    .expect("a namespace object");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the namespace is created");
    name
}

/// Polls `condition` every 100 ms until it holds; panics after `timeout`.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < timeout,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `probe` every 100 ms until it yields a value; after `timeout`, panics with `what` and
/// `context()` (an operator's log tail, say).
pub async fn poll<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
    context: impl Fn() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; operator log tail:\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Secret named `name` holding an app's client secret `value` under the key dynamic secrets
/// read by default (`clientSecret`).
pub fn client_secret(name: &str, value: &str) -> k8s_openapi::api::core::v1::Secret {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "stringData": { "clientSecret": value }
    }))
    .expect("a Secret object")
}
