//! Request counters: how many token requests, Graph reads and writes, per operation, per status,
//! and how many faults of each kind were injected.

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
}
