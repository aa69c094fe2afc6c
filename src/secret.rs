//! The Secret a lease writes its credentials to: how it is built, and how the operator tells its
//! own untouched Secret from an edited one or from a Secret it does not own.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::{Resource, ResourceExt};

use crate::api::EntraLease;
use crate::secret_template::{self, TemplateError, TemplateValues};
use crate::sensitive::{ExposeSecret, SecretString};

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "entra-operator";
pub const LEASE_LABEL: &str = "kms.hanzo.ai/lease";
pub const EXPIRES_AT_ANNOTATION: &str = "kms.hanzo.ai/expires-at";
/// Which credential of its lease the Secret holds (see the claim record's generation).
pub const GENERATION_ANNOTATION: &str = crate::api::CREDENTIAL_GENERATION_ANNOTATION;
/// The keys of a continuous lease's previous credential, while it is still valid.
pub const PREVIOUS_USERNAME_KEY: &str = "previousUsername";
pub const PREVIOUS_PASSWORD_KEY: &str = "previousPassword";
/// The keys of a rotation's next credential while Entra is being asked to take it: written
/// before the password is set (so no set password is ever unknown), moved to the default keys
/// once Entra took it (so consumers never read a password that does not work yet).
pub const PENDING_USERNAME_KEY: &str = "pendingUsername";
pub const PENDING_PASSWORD_KEY: &str = "pendingPassword";
/// SHA-256 of the data the operator wrote, to notice edits. The password is random with more
/// than 128 bits of entropy, so its digest reveals nothing usable.
pub const DATA_DIGEST_ANNOTATION: &str = "kms.hanzo.ai/data-sha256";

/// The state of the Secret a lease writes its credentials to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// No object of that name.
    Missing,
    /// Owned by this lease, with the data the operator wrote.
    Intact,
    /// Owned by this lease, but its data was changed by someone else.
    Tampered,
    /// An object of that name that this lease does not own: never adopted or overwritten.
    Foreign,
}

/// The label selector of every Secret this operator writes.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// What goes into a lease's Secret.
pub struct Credentials<'a> {
    pub user_principal_name: &'a str,
    pub user_id: &'a str,
    pub tenant_id: &'a str,
    /// The password, or a Temporary Access Pass when `access_pass`.
    pub password: &'a SecretString,
    pub access_pass: bool,
    /// The credential's last possible moment, which templates may show.
    pub max_expires_at: Timestamp,
    /// Which credential of the lease this is.
    pub generation: u32,
    /// A continuous lease's previous credential, kept beside this one until it ends.
    pub previous: Option<OtherCredentials<'a>>,
    /// A rotation's next credential, not yet confirmed by Entra.
    pub pending: Option<OtherCredentials<'a>>,
}

/// Another credential of a continuous lease kept in its Secret: the previous one, or the next.
pub struct OtherCredentials<'a> {
    pub user_principal_name: &'a str,
    pub password: &'a SecretString,
}

/// The Secret for `lease`, owned by it (controller reference), so it never outlives the lease:
/// the default keys, and what the lease's template adds (its type, labels, annotations and
/// rendered keys; the operator's own labels and annotations win).
pub fn credentials_secret(
    lease: &EntraLease,
    name: &str,
    credentials: &Credentials<'_>,
    expires_at: Timestamp,
) -> Result<Secret, TemplateError> {
    let template = lease.spec.template.clone().unwrap_or_default();
    let max_expires_at = format_time(credentials.max_expires_at);
    let values = TemplateValues {
        username: credentials.user_principal_name,
        password: credentials.password,
        access_pass: credentials.access_pass,
        user_id: credentials.user_id,
        tenant_id: credentials.tenant_id,
        max_expires_at: &max_expires_at,
    };
    let mut data = secret_template::render(&template, &values)?;
    data.extend(
        [
            ("username", credentials.user_principal_name),
            (
                credential_key(credentials.access_pass),
                credentials.password.expose_secret(),
            ),
            ("userId", credentials.user_id),
            ("tenantId", credentials.tenant_id),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), ByteString(value.as_bytes().to_vec()))),
    );
    let others = [
        (
            &credentials.previous,
            PREVIOUS_USERNAME_KEY,
            PREVIOUS_PASSWORD_KEY,
        ),
        (
            &credentials.pending,
            PENDING_USERNAME_KEY,
            PENDING_PASSWORD_KEY,
        ),
    ];
    for (other, username_key, password_key) in others {
        if let Some(other) = other {
            data.extend(
                [
                    (username_key, other.user_principal_name),
                    (password_key, other.password.expose_secret()),
                ]
                .into_iter()
                .map(|(key, value)| (key.to_owned(), ByteString(value.as_bytes().to_vec()))),
            );
        }
    }
    let mut labels = template.labels;
    labels.extend([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (LEASE_LABEL.to_owned(), lease.name_any()),
    ]);
    let mut annotations = template.annotations;
    annotations.extend([
        (EXPIRES_AT_ANNOTATION.to_owned(), format_time(expires_at)),
        (
            GENERATION_ANNOTATION.to_owned(),
            credentials.generation.to_string(),
        ),
        (DATA_DIGEST_ANNOTATION.to_owned(), data_digest(&data)),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: lease.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: lease.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some(template.type_.unwrap_or_else(|| "Opaque".to_owned())),
        ..Secret::default()
    })
}

/// The key of a lease's credential: `password`, or `temporaryAccessPass` for a pass.
pub fn credential_key(access_pass: bool) -> &'static str {
    if access_pass {
        "temporaryAccessPass"
    } else {
        "password"
    }
}

/// What the operator keeps of a Secret: who controls it and whether its data is what the
/// operator wrote. No data, so cached Secrets hold no password and take little memory; the watch
/// carries only metadata, so whether the data is intact is learnt by reading the Secret once per
/// resourceVersion that the operator did not write itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSummary {
    controller_uid: Option<String>,
    /// The controlling lease's name, to wake it when the Secret goes.
    controller_name: Option<String>,
    /// The resourceVersion the summary describes.
    resource_version: String,
    /// The resourceVersion whose data was read (or written) and whether it was as written.
    checked: Option<(String, bool)>,
}

impl SecretSummary {
    /// The summary of a whole Secret: its data checked.
    pub fn of(secret: &Secret) -> SecretSummary {
        let recorded = secret.annotations().get(DATA_DIGEST_ANNOTATION);
        let actual = data_digest(secret.data.as_ref().unwrap_or(&BTreeMap::new()));
        let resource_version = secret.resource_version().unwrap_or_default();
        SecretSummary {
            checked: Some((resource_version.clone(), recorded == Some(&actual))),
            resource_version,
            ..SecretSummary::of_metadata(&secret.metadata)
        }
    }

    /// The summary of a Secret's metadata, as the watch sees it: unchecked, unless `previous`
    /// checked this very resourceVersion.
    pub fn of_watched(
        secret: &PartialObjectMeta<Secret>,
        previous: Option<&SecretSummary>,
    ) -> SecretSummary {
        let mut summary = SecretSummary::of_metadata(&secret.metadata);
        summary.checked = previous.and_then(|previous| previous.checked.clone());
        summary
    }

    fn of_metadata(metadata: &ObjectMeta) -> SecretSummary {
        let controller = metadata
            .owner_references
            .iter()
            .flatten()
            .find(|owner| owner.controller == Some(true) && owner.kind == "EntraLease");
        SecretSummary {
            controller_uid: controller.map(|owner| owner.uid.clone()),
            controller_name: controller.map(|owner| owner.name.clone()),
            resource_version: metadata.resource_version.clone().unwrap_or_default(),
            checked: None,
        }
    }

    /// The resourceVersion the summary describes.
    pub fn resource_version(&self) -> &str {
        &self.resource_version
    }

    /// Whether the data is as the operator wrote it; `None` until this resourceVersion is read.
    pub fn data_as_written(&self) -> Option<bool> {
        self.checked
            .as_ref()
            .filter(|(version, _)| *version == self.resource_version)
            .map(|(_, intact)| *intact)
    }

    /// Takes over what `read` (the Secret read whole) learnt about its data.
    pub fn learn(&mut self, read: &SecretSummary) {
        self.checked = read.checked.clone();
    }

    /// The Secret `namespace/name` as far as the summary knows it (its controlling lease), for
    /// telling a watch's consumers that it is gone.
    pub fn stand_in(&self, namespace: &str, name: &str) -> PartialObjectMeta<Secret> {
        let owner = self
            .controller_uid
            .clone()
            .zip(self.controller_name.clone())
            .map(|(uid, lease)| OwnerReference {
                api_version: "kms.hanzo.ai/v1alpha1".to_owned(),
                kind: "EntraLease".to_owned(),
                name: lease,
                uid,
                controller: Some(true),
                ..OwnerReference::default()
            });
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            owner_references: owner.map(|owner| vec![owner]),
            ..ObjectMeta::default()
        }
        .into_response_partial::<Secret>()
    }
}

/// Where `secret` (the object named like the lease's Secret, if any) stands for `lease`.
pub fn secret_state(lease: &EntraLease, secret: Option<&SecretSummary>) -> SecretState {
    let Some(secret) = secret else {
        return SecretState::Missing;
    };
    if secret.controller_uid.is_none() || secret.controller_uid != lease.uid() {
        return SecretState::Foreign;
    }
    // A summary whose data nobody read is judged as tampered with: the caller reads the Secret
    // before judging it (Context::secret), so this only guards a summary that skipped that.
    if secret.data_as_written() == Some(true) {
        SecretState::Intact
    } else {
        SecretState::Tampered
    }
}

/// True when `lease` is the controller owner of `secret`.
pub fn is_owned_by(secret: &Secret, lease: &EntraLease) -> bool {
    lease
        .uid()
        .is_some_and(|uid| is_controlled_by(secret, &uid))
}

/// True when the object with `uid` is the controller owner of `secret`.
pub fn is_controlled_by(secret: &Secret, uid: &str) -> bool {
    controller_uid(secret) == Some(uid)
}

/// The uid of the object controlling `secret` (Kubernetes allows one controller reference).
fn controller_uid(secret: &Secret) -> Option<&str> {
    secret
        .owner_references()
        .iter()
        .find(|owner| owner.controller == Some(true))
        .map(|owner| owner.uid.as_str())
}

/// The password the Secret holds, for resuming an interrupted issue with the same value.
pub fn stored_password(secret: &Secret) -> Option<SecretString> {
    text(secret, "password").map(SecretString::from)
}

/// The password the Secret holds for `user_principal_name`, under the default keys or a
/// continuous lease's previous or pending ones.
pub fn stored_password_of(secret: &Secret, user_principal_name: &str) -> Option<SecretString> {
    let (_, password) = held_as(secret, user_principal_name)?.keys();
    text(secret, password).map(SecretString::from)
}

/// Where a Secret keeps a user's credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Under the default keys.
    Current,
    /// Under previousUsername and previousPassword.
    Previous,
    /// Under pendingUsername and pendingPassword.
    Pending,
}

impl Held {
    /// The username and password keys.
    pub fn keys(self) -> (&'static str, &'static str) {
        match self {
            Held::Current => ("username", "password"),
            Held::Previous => (PREVIOUS_USERNAME_KEY, PREVIOUS_PASSWORD_KEY),
            Held::Pending => (PENDING_USERNAME_KEY, PENDING_PASSWORD_KEY),
        }
    }
}

/// Where the Secret keeps the credential of `user_principal_name`, if it does.
pub fn held_as(secret: &Secret, user_principal_name: &str) -> Option<Held> {
    [Held::Current, Held::Previous, Held::Pending]
        .into_iter()
        .find(|held| {
            text(secret, held.keys().0).is_some_and(|u| u.eq_ignore_ascii_case(user_principal_name))
        })
}

/// The Secret without the credential held as `held` (previous or pending). Its data digest is
/// written again only when the data was as the operator wrote it, so an edited Secret stays
/// edited.
pub fn without(secret: &Secret, held: Held) -> Secret {
    let mut trimmed = secret.clone();
    let intact = SecretSummary::of(secret).data_as_written() == Some(true);
    let data = trimmed.data.get_or_insert_default();
    let (username, password) = held.keys();
    data.remove(username);
    data.remove(password);
    if intact {
        let digest = data_digest(data);
        trimmed
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(DATA_DIGEST_ANNOTATION.to_owned(), digest);
    }
    trimmed
}

/// The credential generation a Secret was written for.
pub fn secret_generation(secret: &Secret) -> Option<u32> {
    secret
        .annotations()
        .get(GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = &secret.data.as_ref()?.get(key)?.0;
    String::from_utf8(bytes.clone()).ok()
}

fn data_digest(data: &BTreeMap<String, ByteString>) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for (key, value) in data {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        context.update(&(key.len() as u64).to_be_bytes());
        context.update(key.as_bytes());
        context.update(&(value.0.len() as u64).to_be_bytes());
        context.update(&value.0);
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// RFC 3339 in whole seconds, as Kubernetes writes times.
pub fn format_time(time: Timestamp) -> String {
    Timestamp::from_second(time.as_second())
        .unwrap_or(time)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::{lease, lease_secret as secret_for};

    #[test]
    fn a_fresh_secret_is_intact_and_owned() {
        let lease = lease();
        let secret = secret_for(&lease);
        assert_eq!(
            secret_state(&lease, Some(&SecretSummary::of(&secret))),
            SecretState::Intact
        );
        assert_eq!(
            stored_password(&secret).unwrap().expose_secret(),
            "Correct-Horse-Battery-1"
        );
        assert_eq!(secret.labels()[LEASE_LABEL], "ci");
    }

    #[test]
    fn edited_data_is_tampered() {
        let lease = lease();
        let mut secret = secret_for(&lease);
        let data = secret.data.as_mut().unwrap();
        data.insert("password".into(), ByteString(b"guess".to_vec()));
        assert_eq!(
            secret_state(&lease, Some(&SecretSummary::of(&secret))),
            SecretState::Tampered
        );
    }

    #[test]
    fn emptied_data_is_tampered_and_a_summary_holds_no_password() {
        let lease = lease();
        let mut emptied = secret_for(&lease);
        emptied.data = None;
        let summary = SecretSummary::of(&emptied);
        assert_eq!(secret_state(&lease, Some(&summary)), SecretState::Tampered);
        let intact = SecretSummary::of(&secret_for(&lease));
        assert!(!format!("{intact:?}").contains("Correct"));
    }

    #[test]
    fn a_secret_without_a_controller_is_foreign_even_to_a_lease_without_uid() {
        let mut lease = lease();
        let mut secret = secret_for(&lease);
        secret.metadata.owner_references = None;
        lease.metadata.uid = None;
        let summary = SecretSummary::of(&secret);
        assert_eq!(secret_state(&lease, Some(&summary)), SecretState::Foreign);
    }

    #[test]
    fn a_secret_owned_by_another_lease_is_foreign() {
        let lease = lease();
        let secret = secret_for(&lease);
        let mut other = lease.clone();
        other.metadata.uid = Some("other-uid".into());
        assert_eq!(
            secret_state(&other, Some(&SecretSummary::of(&secret))),
            SecretState::Foreign
        );
        assert_eq!(secret_state(&other, None), SecretState::Missing);
    }

    #[test]
    fn a_previous_credential_sits_beside_the_current_one_until_it_is_taken_out() {
        let lease = lease();
        let current = SecretString::from("Correct-Horse-Battery-2");
        let previous = SecretString::from("Correct-Horse-Battery-1");
        let credentials = Credentials {
            user_principal_name: "bob@contoso.com",
            user_id: "b0b00000-0000-4000-8000-000000000002",
            tenant_id: "contoso.com",
            password: &current,
            access_pass: false,
            max_expires_at: Timestamp::UNIX_EPOCH,
            generation: 2,
            previous: Some(OtherCredentials {
                user_principal_name: "alice@contoso.com",
                password: &previous,
            }),
            pending: Some(OtherCredentials {
                user_principal_name: "carol@contoso.com",
                password: &previous,
            }),
        };
        let secret = credentials_secret(&lease, "entra-ci", &credentials, Timestamp::UNIX_EPOCH)
            .expect("no template");
        assert_eq!(secret.annotations()[GENERATION_ANNOTATION], "2");
        assert_eq!(held_as(&secret, "ALICE@contoso.com"), Some(Held::Previous));
        assert_eq!(held_as(&secret, "bob@contoso.com"), Some(Held::Current));
        assert_eq!(held_as(&secret, "carol@contoso.com"), Some(Held::Pending));
        assert_eq!(
            stored_password_of(&secret, "alice@contoso.com")
                .unwrap()
                .expose_secret(),
            "Correct-Horse-Battery-1"
        );
        let trimmed = without(&secret, Held::Previous);
        assert_eq!(held_as(&trimmed, "alice@contoso.com"), None);
        assert_eq!(
            secret_state(&lease, Some(&SecretSummary::of(&trimmed))),
            SecretState::Intact,
            "taking the previous credential out keeps the Secret the operator's own"
        );
        let mut edited = secret.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("password".into(), ByteString(b"guess".to_vec()));
        assert_eq!(
            secret_state(
                &lease,
                Some(&SecretSummary::of(&without(&edited, Held::Previous)))
            ),
            SecretState::Tampered,
            "an edited Secret stays edited"
        );
    }

    #[test]
    fn debug_output_of_the_password_is_redacted() {
        let password = SecretString::from("Correct-Horse-Battery-1");
        assert!(!format!("{password:?}").contains("Correct"));
    }

    #[test]
    fn a_template_adds_keys_type_labels_and_annotations_and_the_operators_own_win() {
        let mut lease = lease();
        lease.spec.template = Some(crate::api::SecretTemplate {
            type_: Some("kubernetes.io/basic-auth".into()),
            labels: BTreeMap::from([
                ("team".into(), "payments".into()),
                (LEASE_LABEL.into(), "forged".into()),
            ]),
            annotations: BTreeMap::from([("note".into(), "hello".into())]),
            data: BTreeMap::from([(
                "dsn".into(),
                "u={{ username }};p={{ password }};until={{ maxExpiresAt }}".into(),
            )]),
        });
        let secret = secret_for(&lease);
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(secret.labels()["team"], "payments");
        assert_eq!(
            secret.labels()[LEASE_LABEL],
            "ci",
            "the operator's label wins"
        );
        assert_eq!(secret.annotations()["note"], "hello");
        let data = secret.data.as_ref().unwrap();
        assert_eq!(
            String::from_utf8(data["dsn"].0.clone()).unwrap(),
            "u=alice@contoso.com;p=Correct-Horse-Battery-1;until=1970-01-01T00:00:00Z"
        );
        assert_eq!(
            secret_state(&lease, Some(&SecretSummary::of(&secret))),
            SecretState::Intact,
            "the rendered keys are part of the data as written"
        );
    }
}
