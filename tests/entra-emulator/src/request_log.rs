//! The request log: one record per token or Graph request, without bodies, so nothing secret
//! (passwords, client secrets, client assertions, tokens) can ever be in it.

use std::collections::VecDeque;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{credential::CredentialKind, operation::Operation};

/// One token or Graph request as the emulator saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub time: Timestamp,
    pub method: String,
    /// As received, still percent-encoded.
    pub path: String,
    pub query: Option<String>,
    /// `None` when no response was sent (the connection was dropped or held by a fault).
    pub status: Option<u16>,
    pub request_id: String,
    /// The caller's `client-request-id` header, `None` if it sent none.
    pub client_request_id: Option<String>,
    /// `None` for a request no operation matched (e.g. an unknown Graph path).
    pub operation: Option<Operation>,
    /// The injected fault's kind, e.g. `throttle`.
    pub fault: Option<String>,
    /// For token requests: the kind of client credential sent (never the credential itself).
    pub credential: Option<CredentialKind>,
    /// The app's client id: the bearer token's app for Graph, `client_id` for the token
    /// endpoint; `None` when the request named no app the emulator knows a token of.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The quota ([`crate::Quota`]) refused the request with a 429.
    #[serde(default)]
    pub quota_refused: bool,
    /// The `x-ms-throttle-priority` header the caller sent (`low`, `normal`, `high`), verbatim.
    #[serde(default)]
    pub throttle_priority: Option<String>,
}

impl RequestRecord {
    pub fn is_graph(&self) -> bool {
        self.path.starts_with("/v1.0/")
    }

    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// Keeps the newest records only, so a long benchmark does not grow without bound.
#[derive(Debug)]
pub struct RequestLog {
    records: VecDeque<RequestRecord>,
    capacity: usize,
}

pub const REQUEST_LOG_CAPACITY: usize = 10_000;

impl Default for RequestLog {
    fn default() -> RequestLog {
        RequestLog {
            records: VecDeque::new(),
            capacity: REQUEST_LOG_CAPACITY,
        }
    }
}

impl RequestLog {
    pub fn push(&mut self, record: RequestRecord) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        self.records.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.records.clear();
    }
}
