//! Fair shares of a shared pool of users (issue 23), as the identities that really do this: a pool
//! editor whose pool lists another namespace's users with an app that cannot write them, and a
//! lease user of a namespace a cluster pool selects who leases as much as it can. Each actor acts
//! with its own kubeconfig (a ServiceAccount of its namespace with the rights its role has); the
//! operator runs as its own process serving just the test's namespaces. Each test ends with the
//! invariant auditor.
//!
//! The two tests run their own operators, with their own claims namespaces; only the second serves
//! cluster pools, so that one operator reconciles the cluster pool of this binary's control plane.

use entra_test_support as support;

use std::time::Duration;

use entra_emulator::{Config, Fault, FaultPlan, Operation, sample};
use entra_operator::api::{ClusterEntraDynamicSecret, EntraDynamicSecret, LeasePhase, PoolUser};
use entra_operator::controller::claim_name;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::ControlPlane;
use support::cluster::{client_secret, install_crds, namespace};
use support::teams::{SOON, Team, World, is_ready};
use support::tracker::Tracker;

/// A second app of the sample tenant: it may read users but holds no role that resets
/// passwords, so Entra answers 403 to each of its password writes.
const REFUSED_APP_ID: &str = "0ddba11a-0000-4000-8000-00000000b0b0";
const REFUSED_APP_SECRET: &str = "refused-app-secret-value~0123456789";
/// A waiting lease is woken by its namespace's release, not by its 60 s look-again.
const WOKEN_WITHIN: Duration = Duration::from_secs(45);
const SELECTOR_LABEL: &str = "entra.example.com/fair-shares";

fn problem_of<'a>(users: &'a [PoolUser], id: &str) -> Option<&'a str> {
    users
        .iter()
        .find(|u| u.id.as_deref() == Some(id))
        .and_then(|u| u.problem.as_deref())
}

/// The sample tenant plus an app that may read users and write none of them.
fn tenant_with_refused_app() -> Config {
    let mut config = Config::sample();
    let tenant = &mut config.tenants[0];
    let mut refused = tenant.app(sample::CLIENT_ID).unwrap().clone();
    refused.client_id = REFUSED_APP_ID.into();
    refused.display_name = "a pool editor's own app".into();
    refused.secrets = vec![REFUSED_APP_SECRET.into()];
    refused.directory_roles = vec!["Helpdesk Administrator".into()];
    tenant.apps.push(refused);
    config
}

#[tokio::test]
async fn a_pool_that_cannot_write_a_user_does_not_set_it_aside_for_other_pools() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let (owner_ns, borrower_ns) = (
        namespace(&admin, "owner").await,
        namespace(&admin, "borrower").await,
    );
    let operator_namespace = namespace(&admin, "fair-op").await;
    let world = World::start_with(
        tenant_with_refused_app(),
        &[&owner_ns, &borrower_ns],
        operator_namespace,
        vec!["--cluster-pools=false".into()],
    )
    .await;
    let (owner_lab, borrower_lab) = (world.lab(&owner_ns), world.lab(&borrower_ns));
    let owner_tracker = Tracker::start(&owner_lab).await;
    let borrower_tracker = Tracker::start(&borrower_lab).await;
    let owner = Team::new(&world, owner_ns.clone()).await;
    let borrower = Team::new(&world, borrower_ns.clone()).await;

    owner
        .create_pool(
            "own",
            sample::CLIENT_ID,
            sample::CLIENT_SECRET,
            &[sample::ALICE.upn],
        )
        .await;
    // Another namespace's pool editor lists the same user, with an app that cannot write it.
    borrower
        .create_pool(
            "borrowed",
            REFUSED_APP_ID,
            REFUSED_APP_SECRET,
            &[sample::ALICE.upn],
        )
        .await;
    world.pool_ready(&owner_ns, "own").await;
    world.pool_ready(&borrower_ns, "borrowed").await;

    // Its issue's writes are throttled: the Graph scheduler parks each throttled write, the claim
    // is kept, and the next attempt resumes it (also throttled: two throttled answers).
    world.emulator.set_faults(
        FaultPlan::random(1.0, [Fault::throttle(Some("1"))]).only([Operation::SetPassword]),
    );
    let grab = borrower
        .lease("grab", "EntraDynamicSecret", "borrowed")
        .await;
    let grab_uid = grab.metadata.uid.clone().unwrap();
    let alice_claim = claim_name(sample::ALICE.id);
    world
        .eventually(
            "the borrower's issue and its resumed attempt to be throttled",
            SOON,
            || async {
                let claim = world.claims().get_opt(&alice_claim).await.ok()??;
                let holder = claim.spec?.holder_identity?;
                (holder == grab_uid && world.emulator.counters().fault("throttle") >= 2)
                    .then_some(())
            },
        )
        .await;
    // Then Entra refuses the app: every write of that issue applied nothing, so the claim is
    // released without a scramble (which that app could never do).
    world.emulator.clear_faults();
    world
        .eventually(
            "the borrower's claim released and its lease without a credential",
            SOON,
            || async {
                let claim = world.claims().get_opt(&alice_claim).await.ok()?;
                let held = claim
                    .and_then(|c| c.spec?.holder_identity)
                    .is_some_and(|holder| holder == grab_uid);
                // Refused (no other user to try), or waiting for its pool, which is no longer
                // Ready with its only user set aside: whichever the lease saw first.
                let phases = borrower.phases().await;
                let without = phases.iter().any(|(name, phase, _, _)| {
                    name == "grab" && matches!(phase, LeasePhase::Failed | LeasePhase::Pending)
                });
                (!held && without).then_some(())
            },
        )
        .await;
    let refused = world
        .emulator
        .counters()
        .operation_status(Operation::SetPassword, 403);
    assert!(refused >= 1, "Entra refused the borrower's write");
    world
        .eventually(
            "the borrower's pool to show the user set aside",
            SOON,
            || async {
                let pools = Api::<EntraDynamicSecret>::namespaced(admin.clone(), &borrower_ns);
                let status = pools.get("borrowed").await.ok()?.status?;
                (problem_of(&status.users, sample::ALICE.id) == Some("PasswordResetForbidden"))
                    .then_some(())
            },
        )
        .await;

    // The owner's pool still issues that user, and its status does not mark it.
    let own = world.pool_ready(&owner_ns, "own").await;
    let own_users = own.status.unwrap().users;
    assert_eq!(
        problem_of(&own_users, sample::ALICE.id),
        None,
        "another pool's refusal does not mark the user here: {own_users:?}"
    );
    owner.lease("mine", "EntraDynamicSecret", "own").await;
    world
        .eventually("the owner's lease to be Active", SOON, || async {
            owner
                .phases()
                .await
                .iter()
                .any(|(name, phase, _, _)| name == "mine" && *phase == LeasePhase::Active)
                .then_some(())
        })
        .await;
    let (username, password) = owner.credentials("mine").await;
    assert_eq!(username, sample::ALICE.upn);
    assert!(
        world.emulator.sign_in(&username, &password),
        "the owner's password works"
    );
    let own_users = world
        .pool_ready(&owner_ns, "own")
        .await
        .status
        .unwrap()
        .users;
    assert_eq!(problem_of(&own_users, sample::ALICE.id), None);
    // No scramble was tried with the refused app: no more refusals came since its release, and
    // its lease never went to revoking.
    assert_eq!(
        world
            .emulator
            .counters()
            .operation_status(Operation::SetPassword, 403),
        refused,
        "no scramble with the app Entra refuses"
    );
    assert!(
        !borrower
            .phases()
            .await
            .iter()
            .any(|(_, phase, reason, _)| *phase == LeasePhase::Revoking
                || reason == "RevocationFailing"),
        "the borrower's lease never held a credential to revoke"
    );

    world
        .audit(&[
            (&owner_lab, &owner_tracker),
            (&borrower_lab, &borrower_tracker),
        ])
        .await;
}

#[tokio::test]
async fn a_namespace_cannot_hold_more_than_its_share_of_a_cluster_pool() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let (crowded_ns, quiet_ns) = (
        namespace(&admin, "crowded").await,
        namespace(&admin, "quiet").await,
    );
    for name in [&crowded_ns, &quiet_ns] {
        let patch = json!({ "metadata": { "labels": { SELECTOR_LABEL: "yes" } } });
        Api::<Namespace>::all(admin.clone())
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let operator_namespace = namespace(&admin, "share-op").await;
    let world = World::start(
        Config::sample(),
        &[&crowded_ns, &quiet_ns],
        operator_namespace.clone(),
    )
    .await;
    let (crowded_lab, quiet_lab) = (world.lab(&crowded_ns), world.lab(&quiet_ns));
    let crowded_tracker = Tracker::start(&crowded_lab).await;
    let quiet_tracker = Tracker::start(&quiet_lab).await;
    let crowded = Team::new(&world, crowded_ns.clone()).await;
    let quiet = Team::new(&world, quiet_ns.clone()).await;

    // The cluster-pool administrator: the credential in the operator's namespace, a pool of
    // four users, two per namespace at most.
    Api::<Secret>::namespaced(admin.clone(), &operator_namespace)
        .create(
            &PostParams::default(),
            &client_secret("entra-app", sample::CLIENT_SECRET),
        )
        .await
        .unwrap();
    let pool_name = format!("shared-{}", std::process::id());
    let pool: ClusterEntraDynamicSecret = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "ClusterEntraDynamicSecret",
        "metadata": { "name": pool_name },
        "spec": {
            "tenantId": sample::TENANT_DOMAIN,
            "applicationId": sample::CLIENT_ID,
            "clientSecretRef": { "name": "entra-app" },
            "users": [sample::ALICE.upn, sample::BOB.upn, sample::CAROL.upn, sample::FRANK.upn],
            "defaultTTL": "10m",
            "maxTTL": "1h",
            "namespaceSelector": { "matchLabels": { SELECTOR_LABEL: "yes" } },
            "maxLeasesPerNamespace": 2,
        }
    }))
    .unwrap();
    let cluster_pools = Api::<ClusterEntraDynamicSecret>::all(admin.clone());
    cluster_pools
        .create(&PostParams::default(), &pool)
        .await
        .unwrap();
    // The schema refuses a share below one.
    let mut zero = pool.clone();
    zero.metadata.name = Some(format!("{pool_name}-zero"));
    zero.spec.max_leases_per_namespace = Some(0);
    let refused = cluster_pools.create(&PostParams::default(), &zero).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 422),
        "maxLeasesPerNamespace 0 is refused: {refused:?}"
    );
    world
        .eventually("the cluster pool Ready", SOON, || async {
            let pool = cluster_pools.get(&pool_name).await.ok()?;
            is_ready(&pool.status?.conditions).then_some(())
        })
        .await;

    // One namespace's lease user leases as much as it can: two issue, two wait for its share.
    for i in 0..4 {
        crowded
            .lease(
                &format!("lease-{i}"),
                "ClusterEntraDynamicSecret",
                &pool_name,
            )
            .await;
    }
    let counted = |phases: &[(String, LeasePhase, String, String)]| {
        let active = phases
            .iter()
            .filter(|(_, phase, _, _)| *phase == LeasePhase::Active)
            .count();
        let waiting: Vec<&String> = phases
            .iter()
            .filter(|(_, phase, reason, _)| {
                *phase == LeasePhase::Pending && reason == "NamespaceShareExhausted"
            })
            .map(|(_, _, _, message)| message)
            .collect();
        (
            active,
            waiting.len(),
            waiting.first().map(|m| m.to_string()),
        )
    };
    let message = world
        .eventually(
            "two leases Active and two waiting for the share",
            SOON,
            || async {
                let (active, waiting, message) = counted(&crowded.phases().await);
                (active == 2 && waiting == 2).then_some(message)
            },
        )
        .await
        .unwrap_or_default();
    assert!(
        message.contains("maxLeasesPerNamespace of 2"),
        "the reason names the limit: {message}"
    );
    assert_eq!(
        world.records_of(&crowded_ns).await.len(),
        2,
        "the claims (the record) hold two users for the namespace"
    );

    // Another namespace still gets its users.
    quiet
        .lease("quiet", "ClusterEntraDynamicSecret", &pool_name)
        .await;
    world
        .eventually("the other namespace's lease Active", SOON, || async {
            quiet
                .phases()
                .await
                .iter()
                .any(|(_, phase, _, _)| *phase == LeasePhase::Active)
                .then_some(())
        })
        .await;

    // One of the namespace's leases ends: a waiting one is woken and issued.
    let phases = crowded.phases().await;
    let (ended, _, _, _) = phases
        .iter()
        .find(|(_, phase, _, _)| *phase == LeasePhase::Active)
        .unwrap();
    let (ended_user, ended_password) = crowded.credentials(ended).await;
    crowded
        .leases()
        .delete(ended, &DeleteParams::default())
        .await
        .unwrap();
    world
        .eventually(
            "a waiting lease issued once one of its namespace's leases ended",
            WOKEN_WITHIN,
            || async {
                let phases = crowded.phases().await;
                let gone = !phases.iter().any(|(name, _, _, _)| name == ended);
                let (active, waiting, _) = counted(&phases);
                (gone && active == 2 && waiting == 1).then_some(())
            },
        )
        .await;
    assert!(
        !world.emulator.sign_in(&ended_user, &ended_password),
        "the ended lease's password was scrambled"
    );
    assert_eq!(world.records_of(&crowded_ns).await.len(), 2);

    world
        .audit(&[
            (&crowded_lab, &crowded_tracker),
            (&quiet_lab, &quiet_tracker),
        ])
        .await;
}
