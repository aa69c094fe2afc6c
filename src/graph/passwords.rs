//! Password writes: setting a given password, and generating one that Entra accepts.

use std::future::Future;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::password::generate_password;
use crate::sensitive::{ExposeSecret, SecretString};

use super::client::{GraphClient, GraphRequest};
use super::credentials::AppCredentials;
use super::error::GraphError;
use super::not_leasable::NotLeasable;
use super::users::{failure, user_url};

impl GraphClient {
    /// Sets the user's password, not forcing a change at next sign-in. Retries re-send the same
    /// password, so after a lost answer the user ends up with the password the caller holds.
    pub async fn set_password(
        &self,
        app: &AppCredentials,
        user_id: &str,
        password: &SecretString,
    ) -> Result<(), GraphError> {
        const OPERATION: &str = "set password";
        let request = GraphRequest {
            operation: OPERATION,
            method: Method::PATCH,
            url: user_url(app, user_id, None)?,
            json_body: Some(password_patch(password)),
        };
        let response = self.call(app, &request).await?;
        if response.status.is_success() {
            return Ok(());
        }
        let diagnostics = response.graph_diagnostics();
        if response.status != StatusCode::BAD_REQUEST
            || diagnostics.code.as_deref() != Some("Request_BadRequest")
        {
            return Err(failure(OPERATION, user_id, &response));
        }
        // Graph refuses a guest's or a synced user's password with the same 400 as a weak
        // password; only the message differs, so a read tells them apart instead.
        if let Ok(user) = self.get_user(app, user_id).await
            && let Some(reason @ (NotLeasable::Guest | NotLeasable::SyncedFromOnPremises)) =
                user.not_leasable()
        {
            return Err(GraphError::UserNotLeasable {
                user: user.user_principal_name,
                reason,
            });
        }
        Err(GraphError::PasswordRejected {
            user: user_id.to_owned(),
            diagnostics,
        })
    }

    /// Generates a password of `length` characters and sets it, generating a new one when Entra
    /// rejects it (banned list, the user's name), up to `attempts` passwords in all. Returns the
    /// password that is now set.
    pub async fn set_new_password(
        &self,
        app: &AppCredentials,
        user_id: &str,
        length: usize,
        attempts: u32,
    ) -> Result<SecretString, GraphError> {
        let set = |password: SecretString| async move {
            self.set_password(app, user_id, &password).await
        };
        set_generated_password(attempts, || generate_password(length), set).await
    }
}

/// Generates and sets passwords until one is accepted, `attempts` passwords at most; any error
/// other than a rejected password ends it at once.
async fn set_generated_password<Set, Setting>(
    attempts: u32,
    mut generate: impl FnMut() -> SecretString,
    mut set: Set,
) -> Result<SecretString, GraphError>
where
    Set: FnMut(SecretString) -> Setting,
    Setting: Future<Output = Result<(), GraphError>>,
{
    let mut tried = 0;
    loop {
        tried += 1;
        let password = generate();
        match set(password.clone()).await {
            Ok(()) => return Ok(password),
            Err(GraphError::PasswordRejected { .. }) if tried < attempts => {
                tracing::debug!(tried, "password rejected, generating another");
            }
            Err(error) => return Err(error),
        }
    }
}

/// The password PATCH body. Both flags are sent explicitly: a missing `false` can leave the user
/// forced to change the password. Written into a buffer sized up front, so no reallocation leaves
/// a copy behind, and wiped when the call is done (the HTTP stack's own send buffers are beyond
/// our reach).
fn password_patch(password: &SecretString) -> Zeroizing<Vec<u8>> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct PasswordPatch<'a> {
        password_profile: PasswordProfile<'a>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct PasswordProfile<'a> {
        password: &'a str,
        force_change_password_next_sign_in: bool,
        force_change_password_next_sign_in_with_mfa: bool,
    }
    let patch = PasswordPatch {
        password_profile: PasswordProfile {
            password: password.expose_secret(),
            force_change_password_next_sign_in: false,
            force_change_password_next_sign_in_with_mfa: false,
        },
    };
    // JSON escaping of the generator's ASCII alphabet at most doubles a character.
    let mut body = Zeroizing::new(Vec::with_capacity(160 + 2 * password.expose_secret().len()));
    serde_json::to_writer(&mut *body, &patch).expect("a password patch serializes");
    body
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn rejected(user: &str) -> GraphError {
        GraphError::PasswordRejected {
            user: user.into(),
            diagnostics: Default::default(),
        }
    }

    #[tokio::test]
    async fn rejected_passwords_are_regenerated_until_one_is_accepted() {
        let sent = Mutex::new(Vec::new());
        let set = |password: SecretString| {
            let mut sent = sent.lock().unwrap();
            sent.push(password.expose_secret().to_owned());
            let answer = if sent.len() < 3 {
                Err(rejected("u"))
            } else {
                Ok(())
            };
            async move { answer }
        };
        let password = set_generated_password(5, || generate_password(16), set)
            .await
            .unwrap();
        let sent = sent.into_inner().unwrap();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2], password.expose_secret());
        assert_ne!(sent[0], sent[1], "each attempt is a new password");
    }

    #[tokio::test]
    async fn regeneration_stops_at_the_limit_and_on_other_errors() {
        let calls = Mutex::new(0);
        let always_rejected = |_| {
            *calls.lock().unwrap() += 1;
            async { Err(rejected("u")) }
        };
        let error = set_generated_password(3, || generate_password(16), always_rejected)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "PasswordRejected");
        assert_eq!(*calls.lock().unwrap(), 3);

        *calls.lock().unwrap() = 0;
        let forbidden = |_| {
            *calls.lock().unwrap() += 1;
            async {
                Err(GraphError::MissingPermission {
                    operation: "set password",
                    diagnostics: Default::default(),
                })
            }
        };
        let error = set_generated_password(3, || generate_password(16), forbidden)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "MissingPermission");
        assert_eq!(*calls.lock().unwrap(), 1);
    }

    #[test]
    fn password_patch_sends_the_password_and_both_flags_false() {
        let body = password_patch(&SecretString::from("Pa$$w0rd-\\\"x"));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"passwordProfile": {
                "password": "Pa$$w0rd-\\\"x",
                "forceChangePasswordNextSignIn": false,
                "forceChangePasswordNextSignInWithMfa": false,
            }})
        );
    }
}
