//! Request counters: how many token requests, Graph reads and writes, per operation, per status,
//! how many faults of each kind were injected, how many requests the quota refused, and how many
//! writes each app had answered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{credential::CredentialKind, operation::Operation, request_log::RequestRecord};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub token_requests: u64,
    /// Token requests by the kind of client credential they carried.
    #[serde(default)]
    pub token_requests_by_credential: BTreeMap<CredentialKind, u64>,
    /// Graph GETs.
    pub graph_reads: u64,
    /// Graph PATCHes and POSTs: each one costs a resource unit in Entra.
    pub graph_writes: u64,
    pub by_operation: BTreeMap<Operation, u64>,
    /// Responses by HTTP status; requests that got none are in `unanswered`.
    pub by_status: BTreeMap<u16, u64>,
    pub by_operation_and_status: BTreeMap<Operation, BTreeMap<u16, u64>>,
    /// Requests whose connection was dropped or held instead of answered.
    pub unanswered: u64,
    /// Injected faults by kind name (`throttle`, `reset`, ...).
    pub faults: BTreeMap<String, u64>,
    /// Requests the quota refused with a 429 (injected throttles are in `faults`).
    #[serde(default)]
    pub quota_throttled: u64,
    /// The same, by app client id (lower case).
    #[serde(default)]
    pub quota_throttled_by_app: BTreeMap<String, u64>,
    /// Graph writes that got an answer (any status, the quota's 429s included), by app client id
    /// (lower case).
    #[serde(default)]
    pub writes_by_app: BTreeMap<String, u64>,
}

impl Counters {
    pub(crate) fn record(&mut self, record: &RequestRecord) {
        match (record.is_graph(), record.is_write()) {
            (false, _) => self.token_requests += 1,
            (true, false) => self.graph_reads += 1,
            (true, true) => self.graph_writes += 1,
        }
        if let Some(credential) = record.credential {
            *self
                .token_requests_by_credential
                .entry(credential)
                .or_default() += 1;
        }
        if let Some(operation) = record.operation {
            *self.by_operation.entry(operation).or_default() += 1;
        }
        match record.status {
            Some(status) => {
                *self.by_status.entry(status).or_default() += 1;
                if let Some(operation) = record.operation {
                    let statuses = self.by_operation_and_status.entry(operation).or_default();
                    *statuses.entry(status).or_default() += 1;
                }
            }
            None => self.unanswered += 1,
        }
        if let Some(fault) = &record.fault {
            *self.faults.entry(fault.clone()).or_default() += 1;
        }
        let app_id = record.app_id.as_deref().map(str::to_ascii_lowercase);
        if record.quota_refused {
            self.quota_throttled += 1;
            if let Some(app_id) = &app_id {
                *self
                    .quota_throttled_by_app
                    .entry(app_id.clone())
                    .or_default() += 1;
            }
        }
        if record.is_graph()
            && record.is_write()
            && record.status.is_some()
            && let Some(app_id) = app_id
        {
            *self.writes_by_app.entry(app_id).or_default() += 1;
        }
    }

    pub fn operation(&self, operation: Operation) -> u64 {
        self.by_operation.get(&operation).copied().unwrap_or(0)
    }

    /// Token requests that carried this kind of credential.
    pub fn token_requests_with(&self, credential: CredentialKind) -> u64 {
        self.token_requests_by_credential
            .get(&credential)
            .copied()
            .unwrap_or(0)
    }

    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub fn operation_status(&self, operation: Operation, status: u16) -> u64 {
        self.by_operation_and_status
            .get(&operation)
            .and_then(|statuses| statuses.get(&status))
            .copied()
            .unwrap_or(0)
    }

    /// Injected faults of one kind, by name (`Fault::name`).
    pub fn fault(&self, kind: &str) -> u64 {
        self.faults.get(kind).copied().unwrap_or(0)
    }

    /// Requests the quota refused, of every app.
    pub fn quota_throttled(&self) -> u64 {
        self.quota_throttled
    }

    /// Requests of this app (client id, any case) that the quota refused.
    pub fn quota_throttled_for_app(&self, app_id: &str) -> u64 {
        count_for_app(&self.quota_throttled_by_app, app_id)
    }

    /// Graph writes of this app (client id, any case) that got an answer.
    pub fn writes_for_app(&self, app_id: &str) -> u64 {
        count_for_app(&self.writes_by_app, app_id)
    }
}

fn count_for_app(counts: &BTreeMap<String, u64>, app_id: &str) -> u64 {
    counts
        .get(&app_id.to_ascii_lowercase())
        .copied()
        .unwrap_or(0)
}
