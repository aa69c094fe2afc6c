//! The operator's record of every credential lives in its own namespace: a claim per leased user
//! (a `coordination.k8s.io` Lease `entra-user-<object id>`) and copies of the app credentials it
//! revokes with. The chart's `<fullname>-claims` admission policy lets only the operator's
//! ServiceAccount and the break-glass groups write them, so an admin of that namespace can neither
//! move a claim's expiry, unlabel it, strip its finalizer, delete it, forge one, nor touch a copy;
//! other Leases (the leader's among them) and Secrets stay theirs, and the namespace controller
//! and the garbage collector keep working.
//!
//! Each release serves a namespace of its own (`watchNamespaces`), so its tenant policies guard
//! nobody else's and the tests run side by side.

use entra_test_support as support;

use std::path::Path;

use entra_emulator::{Config, Emulator, sample};
use entra_operator::api::{EntraDynamicSecret, EntraLease, LeasePhase};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::{Value, json};
use support::ControlPlane;
use support::admission::{refusal_by, until_authorized, until_refused};
use support::audit::Auditor;
use support::chart::{
    ChartRelease, chart_operator, client_for, free_port, install, namespace_user, uninstall,
};
use support::cluster::{client_secret, install_crds, namespace, poll};
use support::lab::Lab;
use support::lease_env::{APP_ID, CLIENT_SECRET};
use support::tracker::Tracker;

const BREAK_GLASS_GROUP: &str = "platform:break-glass";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const COPY_LABEL: &str = "kms.hanzo.ai/credential-copy";
const RECORD: &str = "kms.hanzo.ai/record";
const REVOKE: &str = "kms.hanzo.ai/revoke";
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// An admin of the operator's namespace (the built-in `admin` role) attacks a live claim and credential copy: every write is refused by the policy, and the lease still ends
/// on time, its password dead in the emulator. The leader Lease and any other Lease or Secret
/// stay writable; a member of a break-glass group may write the records, and the operator ends
/// the lease and releases its claim under the policy.
#[tokio::test]
async fn an_operator_namespace_admin_cannot_touch_the_claims_or_credential_copies() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let apps = namespace(&admin, "claims-apps").await;
    let emulator = Emulator::start(Config::sample())
        .await
        .expect("the emulator starts");
    let values = json!({
        "entra": { "authorityHost": emulator.base_url(), "graphEndpoint": emulator.base_url() },
        "metrics": { "port": free_port() },
        "watchNamespaces": [apps],
        "admissionPolicies": { "breakGlassGroups": ["system:masters", BREAK_GLASS_GROUP] },
    });
    let release = ChartRelease::start(control_plane, "claims-op", &values, "operator-a").await;
    let operator_ns = release.namespace.clone();
    let full_name = format!("{operator_ns}-entra-operator");
    let policy = format!("{full_name}-claims");
    let operator_sa = format!("system:serviceaccount:{operator_ns}:{full_name}");
    let who = [operator_sa.as_str(), "system:masters", BREAK_GLASS_GROUP];

    let lab = Lab {
        client: admin.clone(),
        namespace: apps.clone(),
        claims_namespace: operator_ns.clone(),
    };
    let tracker = Tracker::start(&lab).await;
    let (password, secret_name) = lease_alice(&admin, &release, &apps).await;
    assert!(emulator.sign_in(sample::ALICE.upn, &password));

    let claim_name = format!("entra-user-{}", sample::ALICE.id.to_ascii_lowercase());
    let claims = Api::<Lease>::namespaced(admin.clone(), &operator_ns);
    let claim = claims.get(&claim_name).await.expect("the operator's claim");
    let copies = Api::<Secret>::namespaced(admin.clone(), &operator_ns);
    let copy = release
        .operator
        .wait_for("a credential copy in the operator's namespace", || async {
            let listed = copies
                .list(&ListParams::default().labels(&format!("{COPY_LABEL}=true")))
                .await
                .unwrap();
            listed.items.into_iter().next()
        })
        .await;
    let copy_name = copy.metadata.name.clone().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ops = namespace_admins(control_plane, &operator_ns, dir.path()).await;
    let ops_leases = Api::<Lease>::namespaced(ops.clone(), &operator_ns);
    let ops_secrets = Api::<Secret>::namespaced(ops.clone(), &operator_ns);

    let probe = format!("entra-user-{}", sample::BOB.id);
    until_in_force(&policy, &who, &ops_leases, &claims, &probe).await;

    // The claim: its record, its labels, its finalizer, its existence.
    let mut record: Value =
        serde_json::from_str(&claim.metadata.annotations.as_ref().unwrap()[RECORD]).unwrap();
    record["expiresAt"] = json!("2099-01-01T00:00:00Z");
    let attacks = [
        (
            "move the claim's expiresAt",
            json!({ "metadata": { "annotations": { RECORD: record.to_string() } } }),
        ),
        (
            "remove the claim's label",
            json!({ "metadata": { "labels": { MANAGED_BY: null } } }),
        ),
        (
            "strip the claim's finalizer",
            json!({ "metadata": { "finalizers": null } }),
        ),
    ];
    for (what, patch) in attacks {
        let message = refused(
            &policy,
            what,
            &who,
            merge(&ops_leases, &claim_name, patch).await,
        );
        assert!(
            message.contains(&format!(
                "may not UPDATE the claim {operator_ns}/{claim_name}"
            )),
            "{message}"
        );
    }
    let message = refused(
        &policy,
        "delete the claim",
        &who,
        ops_leases
            .delete(&claim_name, &DeleteParams::default())
            .await,
    );
    assert!(message.contains("may not DELETE the claim"), "{message}");
    refused(
        &policy,
        "delete every claim at once",
        &who,
        ops_leases
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&format!("{MANAGED_BY}=entra-operator")),
            )
            .await,
    );
    let forged_labels = json!({
        MANAGED_BY: "entra-operator",
        "kms.hanzo.ai/user-id": sample::BOB.id,
        "kms.hanzo.ai/holder-uid": "00000000-0000-4000-8000-00000000f00d",
    });
    let message = refused(
        &policy,
        "forge a labelled claim",
        &who,
        ops_leases
            .create(
                &PostParams::default(),
                &lease_named(&probe, json!({ "labels": forged_labels })),
            )
            .await,
    );
    assert!(message.contains("may not CREATE the claim"), "{message}");
    let after = claims.get(&claim_name).await.unwrap();
    assert_eq!(after.metadata.annotations, claim.metadata.annotations);
    assert_eq!(after.metadata.labels, claim.metadata.labels);
    assert_eq!(after.metadata.finalizers, Some(vec![REVOKE.to_owned()]));
    assert!(after.metadata.deletion_timestamp.is_none());

    // Another Lease is the admin's: create, edit and delete it, but not label it into a claim.
    let (pp, app_lock) = (PostParams::default(), lease_named("app-lock", json!({})));
    until_authorized("the admin creates a Lease", || {
        ops_leases.create(&pp, &app_lock)
    })
    .await;
    merge(
        &ops_leases,
        "app-lock",
        json!({ "spec": { "holderIdentity": "me" } }),
    )
    .await
    .expect("the admin edits its own Lease");
    refused(
        &policy,
        "label a Lease into a claim",
        &who,
        merge(
            &ops_leases,
            "app-lock",
            json!({ "metadata": { "labels": { "kms.hanzo.ai/user-id": sample::BOB.id } } }),
        )
        .await,
    );
    ops_leases
        .delete("app-lock", &DeleteParams::default())
        .await
        .expect("the admin deletes its own Lease");
    // The leader Lease is not a claim (a dry run: the operator's renewals carry on).
    let dry_run = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    ops_leases
        .patch(
            &format!("{full_name}-leader"),
            &dry_run,
            &Patch::Merge(json!({ "metadata": { "annotations": { "example.com/note": "x" } } })),
        )
        .await
        .expect("the admin may write the leader Lease");

    // The credential copy: its data, its label, its existence; and no forged copy.
    for (what, patch) in [
        (
            "change a credential copy",
            json!({ "stringData": { "clientSecret": "attacker" } }),
        ),
        (
            "remove a credential copy's label",
            json!({ "metadata": { "labels": { COPY_LABEL: null } } }),
        ),
    ] {
        let message = refused(
            &policy,
            what,
            &who,
            merge(&ops_secrets, &copy_name, patch).await,
        );
        assert!(
            message.contains("may not UPDATE the credential copy"),
            "{message}"
        );
    }
    refused(
        &policy,
        "delete a credential copy",
        &who,
        ops_secrets
            .delete(&copy_name, &DeleteParams::default())
            .await,
    );
    refused(
        &policy,
        "forge a credential copy",
        &who,
        ops_secrets
            .create(
                &PostParams::default(),
                &secret_labelled("forged", COPY_LABEL),
            )
            .await,
    );
    ops_secrets
        .create(
            &PostParams::default(),
            &secret_labelled("app-config", "example.com/app"),
        )
        .await
        .expect("the admin creates a Secret of its own");
    refused(
        &policy,
        "label a Secret into a credential copy",
        &who,
        merge(
            &ops_secrets,
            "app-config",
            json!({ "metadata": { "labels": { COPY_LABEL: "true" } } }),
        )
        .await,
    );
    ops_secrets
        .delete("app-config", &DeleteParams::default())
        .await
        .expect("the admin deletes a Secret of its own");
    let copy_after = copies.get(&copy_name).await.unwrap();
    assert_eq!(copy_after.data, copy.data);
    assert_eq!(copy_after.metadata.labels, copy.metadata.labels);

    // A break-glass group member with the same rights may write both; without the group, not.
    let note = json!({ "metadata": { "annotations": { "example.com/note": "checked" } } });
    let on_call = impersonating(control_plane, "on-call", &[]).await;
    refused(
        &policy,
        "annotate a claim outside the break-glass group",
        &who,
        merge(
            &Api::<Lease>::namespaced(on_call, &operator_ns),
            &claim_name,
            note.clone(),
        )
        .await,
    );
    let break_glass = impersonating(control_plane, "on-call", &[BREAK_GLASS_GROUP]).await;
    let break_glass_leases = Api::<Lease>::namespaced(break_glass.clone(), &operator_ns);
    let break_glass_secrets = Api::<Secret>::namespaced(break_glass, &operator_ns);
    merge(&break_glass_leases, &claim_name, note.clone())
        .await
        .expect("break-glass annotates a claim");
    merge(&break_glass_secrets, &copy_name, note)
        .await
        .expect("break-glass annotates a credential copy");

    // The operator ends the lease and releases its claim (an update and a delete of it).
    Api::<EntraLease>::namespaced(admin.clone(), &apps)
        .delete("ci", &DeleteParams::default())
        .await
        .unwrap();
    release
        .operator
        .wait_for("the claim to be released", || async {
            claims
                .get_opt(&claim_name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    assert!(
        !emulator.sign_in(sample::ALICE.upn, &password),
        "the revoked password no longer works"
    );
    let lease_secrets = Api::<Secret>::namespaced(admin.clone(), &apps);
    assert!(lease_secrets.get_opt(&secret_name).await.unwrap().is_none());
    let mut auditor = Auditor::new(std::time::Duration::from_secs(10));
    auditor.final_check(&lab, &tracker, &emulator).await;
    assert!(auditor.violations.is_empty(), "{:?}", auditor.violations);
    uninstall(control_plane, &operator_ns, &operator_ns);
}

/// The namespace controller and the garbage collector are not in the policy's way: a record
/// deleted with foreground or orphan propagation goes once the collector dropped its finalizer,
/// and deleting the release namespace deletes the copies and marks the claims deleted, the
/// namespace going once the claims are released (here by break-glass, as the operator would
/// after revoking: the namespace controller deletes the operator's ServiceAccount too).
#[tokio::test]
async fn the_namespace_controller_and_garbage_collector_still_delete_the_records() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let apps = namespace(&admin, "records-apps").await;
    let operator_ns = namespace(&admin, "records-op").await;
    install(
        control_plane,
        &operator_ns,
        &operator_ns,
        &json!({ "watchNamespaces": [apps] }),
    );
    let policy = format!("{operator_ns}-entra-operator-claims");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("operator.kubeconfig");
    chart_operator(control_plane, &operator_ns, &operator_ns, &kubeconfig).await;
    let operator = client_for(&kubeconfig).await;
    let operator_leases = Api::<Lease>::namespaced(operator.clone(), &operator_ns);
    let operator_secrets = Api::<Secret>::namespaced(operator, &operator_ns);

    let claim_name = "entra-user-00000000-0000-4000-8000-0000000000c1";
    let claim = lease_named(
        claim_name,
        json!({
            "labels": { MANAGED_BY: "entra-operator", "kms.hanzo.ai/user-id": "00000000-0000-4000-8000-0000000000c1" },
            "finalizers": [REVOKE],
        }),
    );
    let pp = PostParams::default();
    until_authorized("the operator claims a user", || {
        operator_leases.create(&pp, &claim)
    })
    .await;
    for name in ["copy-kept", "copy-foreground", "copy-orphan"] {
        operator_secrets
            .create(&PostParams::default(), &secret_labelled(name, COPY_LABEL))
            .await
            .expect("the operator writes a credential copy");
    }
    let ops = namespace_admins(control_plane, &operator_ns, dir.path()).await;
    let claims = Api::<Lease>::namespaced(admin.clone(), &operator_ns);
    let ops_leases = Api::<Lease>::namespaced(ops, &operator_ns);
    until_in_force(&policy, &[], &ops_leases, &claims, "entra-user-probe").await;
    refused(
        &policy,
        "the admin deletes a claim",
        &[],
        ops_leases
            .delete(claim_name, &DeleteParams::default())
            .await,
    );

    // The namespace controller's identity deletes nothing while the namespace lives.
    let namespace_controller = impersonating(
        control_plane,
        "system:serviceaccount:kube-system:namespace-controller",
        &[],
    )
    .await;
    refused(
        &policy,
        "the namespace controller deletes a claim of a live namespace",
        &[],
        Api::<Lease>::namespaced(namespace_controller, &operator_ns)
            .delete(claim_name, &DeleteParams::default())
            .await,
    );

    let secrets = Api::<Secret>::namespaced(admin.clone(), &operator_ns);
    for (name, propagation) in [
        ("copy-foreground", PropagationPolicy::Foreground),
        ("copy-orphan", PropagationPolicy::Orphan),
    ] {
        let params = DeleteParams {
            propagation_policy: Some(propagation),
            ..DeleteParams::default()
        };
        secrets
            .delete(name, &params)
            .await
            .expect("break-glass deletes a copy");
        poll(
            &format!("the collector to drop {name}'s finalizer"),
            WAIT,
            || async { secrets.get_opt(name).await.unwrap().is_none().then_some(()) },
            || control_plane.log_tail("kube-controller-manager"),
        )
        .await;
    }

    Api::<Namespace>::all(admin.clone())
        .delete(&operator_ns, &DeleteParams::default())
        .await
        .unwrap();
    poll(
        "the namespace controller to delete the copy and mark the claim deleted",
        WAIT,
        || async {
            let claim = claims.get(claim_name).await.unwrap();
            let copy_gone = secrets.get_opt("copy-kept").await.unwrap().is_none();
            (claim.metadata.deletion_timestamp.is_some() && copy_gone).then_some(())
        },
        || control_plane.log_tail("kube-controller-manager"),
    )
    .await;
    merge(
        &claims,
        claim_name,
        json!({ "metadata": { "finalizers": null } }),
    )
    .await
    .expect("break-glass releases the claim");
    poll(
        "the release namespace to be gone",
        WAIT,
        || async {
            Api::<Namespace>::all(admin.clone())
                .get_opt(&operator_ns)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
        || control_plane.log_tail("kube-controller-manager"),
    )
    .await;
    // Helm's record went with the namespace; its cluster-scoped objects stay behind.
    let deleted = control_plane.kubectl(&[
        "delete",
        "validatingadmissionpolicies,validatingadmissionpolicybindings,clusterroles,clusterrolebindings",
        "-l",
        &format!("app.kubernetes.io/instance={operator_ns}"),
    ]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
}

/// Leases Alice from a pool in `apps` as the cluster admin, and waits until the release's
/// operator made it Active; returns her password and the lease's Secret.
async fn lease_alice(admin: &kube::Client, release: &ChartRelease, apps: &str) -> (String, String) {
    let pp = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), apps);
    secrets
        .create(&pp, &client_secret("entra-app", CLIENT_SECRET))
        .await
        .unwrap();
    let pool: EntraDynamicSecret = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": "contoso" },
        "spec": {
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": APP_ID,
            "clientSecretRef": { "name": "entra-app" },
            "users": [sample::ALICE.upn],
            "defaultTTL": "1h",
            "maxTTL": "2h",
        }
    }))
    .unwrap();
    Api::<EntraDynamicSecret>::namespaced(admin.clone(), apps)
        .create(&pp, &pool)
        .await
        .unwrap();
    let lease: EntraLease = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": "ci" },
        "spec": { "dynamicSecretRef": { "name": "contoso" }, "ttl": "30m" }
    }))
    .unwrap();
    let leases: Api<EntraLease> = Api::namespaced(admin.clone(), apps);
    leases.create(&pp, &lease).await.unwrap();
    let active = release
        .operator
        .wait_for("the lease to be Active", || async {
            leases.get_opt("ci").await.unwrap().filter(|lease| {
                lease.status.as_ref().and_then(|s| s.phase) == Some(LeasePhase::Active)
            })
        })
        .await;
    let secret_name = active.status.unwrap().secret_name.unwrap();
    let data = secrets.get(&secret_name).await.unwrap().data.unwrap();
    let password = String::from_utf8(data["password"].0.clone()).unwrap();
    (password, secret_name)
}

/// The admins of `namespace`: ServiceAccount `ops`, whose client this returns, and user
/// `on-call` (see [`impersonating`]), each with the built-in `admin` role there, which includes
/// every write on Leases and Secrets.
async fn namespace_admins(
    control_plane: &ControlPlane,
    namespace: &str,
    dir: &Path,
) -> kube::Client {
    let on_call = format!(
        r#"---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: on-call-admin, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin }}
subjects: [{{ apiGroup: rbac.authorization.k8s.io, kind: User, name: on-call }}]
"#
    );
    let kubeconfig = dir.join("ops.kubeconfig");
    namespace_user(
        control_plane,
        namespace,
        "ops",
        "admin",
        &on_call,
        &kubeconfig,
    )
    .await
}

/// Waits until `policy` is in force: the admin's `leases` try to forge an unlabelled claim
/// `probe`, which `admin_leases` (break-glass) deletes whenever it was admitted.
async fn until_in_force(
    policy: &str,
    who: &[&str],
    leases: &Api<Lease>,
    admin_leases: &Api<Lease>,
    probe: &str,
) {
    until_refused(
        policy,
        "the admin forges an unlabelled claim",
        who,
        || async {
            let created = leases
                .create(&PostParams::default(), &lease_named(probe, json!({})))
                .await;
            if created.is_ok() {
                admin_leases
                    .delete(probe, &DeleteParams::default())
                    .await
                    .unwrap();
            }
            created.map(drop)
        },
    )
    .await;
}

/// A client of the cluster admin impersonating `user` in `groups` (with only their rights).
async fn impersonating(control_plane: &ControlPlane, user: &str, groups: &[&str]) -> kube::Client {
    let mut kubeconfig = kube::config::Kubeconfig::read_from(&control_plane.kubeconfig).unwrap();
    for named in &mut kubeconfig.auth_infos {
        let auth = named.auth_info.get_or_insert_with(Default::default);
        auth.impersonate = Some(user.to_owned());
        auth.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn lease_named(name: &str, metadata: Value) -> Lease {
    let mut lease = json!({ "metadata": metadata, "spec": {} });
    lease["metadata"]["name"] = json!(name);
    serde_json::from_value(lease).unwrap()
}

fn secret_labelled(name: &str, label: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { label: "true" } },
        "stringData": { "clientSecret": "value" },
    }))
    .unwrap()
}

async fn merge<K>(api: &Api<K>, name: &str, patch: Value) -> kube::Result<()>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
}

/// Asserts that `result` is a refusal by `policy` naming each of `who`; returns its message.
fn refused<T: std::fmt::Debug>(
    policy: &str,
    what: &str,
    who: &[&str],
    result: kube::Result<T>,
) -> String {
    let message = refusal_by(policy, &result)
        .unwrap_or_else(|| panic!("{what}: not refused by {policy}: {result:?}"));
    for name in who {
        assert!(
            message.contains(name),
            "{what}: the refusal names {name}: {message}"
        );
    }
    message
}
