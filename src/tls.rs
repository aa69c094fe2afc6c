//! The process uses one TLS crypto provider, ring, for both the Kubernetes client (kube's default)
//! and the Graph client (reqwest is built without a provider of its own).

/// Installs ring as the process-wide rustls provider. Safe to call more than once.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is the state we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
