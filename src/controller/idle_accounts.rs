//! `disableIdleUsers`: a pool user's account is disabled between leases, which closes every way
//! in at once (a method left behind, a password leaked before its scramble took effect).
//!
//! The operator enables only accounts it disabled itself: an account an administrator disabled
//! (during an incident, say) stays disabled. Before it disables one, the operator writes a marker,
//! a `coordination.k8s.io` Lease named after the user in its own namespace, where only it
//! writes; it enables an account only while that marker is there, and removes it once enabled.
//! Markers carry no claim label, so the claim watch, the reaper and the pools never see them;
//! the chart's admission policy keeps them the operator's, as it does claims.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease as Marker;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

use super::Error;
use super::claims::{is_conflict, is_not_found};
use crate::graph::{AppCredentials, GraphClient, GraphError};

/// Label of a marker, with the user's object id.
const DISABLED_USER_LABEL: &str = "kms.hanzo.ai/disabled-user-id";

/// The markers of the accounts the operator disabled.
#[derive(Clone)]
pub struct IdleAccounts {
    api: Api<Marker>,
}

impl IdleAccounts {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
        }
    }

    /// Disables the account of `user_id` after a lease's end, unless someone else disabled it
    /// meanwhile: then it stays theirs. Idempotent, so an end that is retried repeats it.
    pub async fn disable(
        &self,
        graph: &GraphClient,
        app: &AppCredentials,
        user_id: &str,
    ) -> Result<(), Error> {
        let user = match graph.get_user(app, user_id).await {
            Ok(user) => user,
            Err(GraphError::UserNotFound { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        // Disabled already: by this process before a crash (its marker is there), or by an
        // administrator (no marker, and none is written now).
        if user.account_enabled == Some(false) {
            return Ok(());
        }
        // The marker goes first, so that a crash after the PATCH leaves an account the operator
        // knows it disabled; it goes again when the PATCH fails, so that an app that may read an
        // account but not disable it never leaves a marker on an enabled one (which would let
        // another pool's app enable it once an administrator disabled it).
        self.mark(user_id).await?;
        match graph.set_account_enabled(app, user_id, false).await {
            Ok(()) | Err(GraphError::UserNotFound { .. }) => Ok(()),
            Err(error) => {
                self.unmark(user_id).await?;
                Err(error.into())
            }
        }
    }

    /// Enables the account of `user_id` right before its password is set at issue, if the
    /// operator disabled it; an account without a marker is left as it is.
    pub async fn enable_if_disabled_here(
        &self,
        graph: &GraphClient,
        app: &AppCredentials,
        user_id: &str,
    ) -> Result<(), Error> {
        if !self.disabled_here(user_id).await? {
            return Ok(());
        }
        graph.set_account_enabled(app, user_id, true).await?;
        self.unmark(user_id).await
    }

    /// Whether the operator disabled the account of `user_id` (its marker is there).
    pub async fn disabled_here(&self, user_id: &str) -> Result<bool, Error> {
        Ok(self.api.get_opt(&marker_name(user_id)).await?.is_some())
    }

    async fn unmark(&self, user_id: &str) -> Result<(), Error> {
        match self
            .api
            .delete(&marker_name(user_id), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Writes the marker of `user_id`, if it is not there yet.
    async fn mark(&self, user_id: &str) -> Result<(), Error> {
        let marker = Marker {
            metadata: ObjectMeta {
                name: Some(marker_name(user_id)),
                labels: Some(BTreeMap::from([(
                    DISABLED_USER_LABEL.to_owned(),
                    user_id.to_ascii_lowercase(),
                )])),
                ..ObjectMeta::default()
            },
            spec: None,
        };
        match self.api.create(&PostParams::default(), &marker).await {
            Ok(_) => Ok(()),
            Err(error) if is_conflict(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

fn marker_name(user_id: &str) -> String {
    format!("entra-disabled-{}", user_id.to_ascii_lowercase())
}
