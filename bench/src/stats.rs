//! Percentiles and the API server's request counters.

use std::collections::BTreeMap;

use serde::Serialize;

/// Percentiles of a sample, in milliseconds (nearest rank).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(samples: &[f64]) -> Percentiles {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        Percentiles {
            count: sorted.len(),
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// `apiserver_request_total` summed by (verb, resource[/subresource][ [code]]), the code only
/// for refused requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiRequests(pub BTreeMap<(String, String), f64>);

/// Verbs that change something. Server-side apply counts as `APPLY`.
pub const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

impl ApiRequests {
    /// Parses the API server's `/metrics` text.
    pub fn parse(metrics: &str) -> ApiRequests {
        let mut totals = BTreeMap::new();
        for line in metrics.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let label = |name: &str| -> String {
                let key = format!("{name}=\"");
                labels
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(&key))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap_or_default()
            };
            let mut resource = label("resource");
            let subresource = label("subresource");
            if !subresource.is_empty() {
                resource = format!("{resource}/{subresource}");
            }
            // Refused requests (conflicts, not found) are kept apart: they cost a round trip but
            // change nothing.
            let code = label("code");
            if code.starts_with('4') || code.starts_with('5') {
                resource = format!("{resource} [{code}]");
            }
            *totals.entry((label("verb"), resource)).or_insert(0.0) += value;
        }
        ApiRequests(totals)
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &ApiRequests) -> ApiRequests {
        let mut diff = BTreeMap::new();
        for (key, value) in &self.0 {
            let delta = value - earlier.0.get(key).copied().unwrap_or(0.0);
            if delta > 0.0 {
                diff.insert(key.clone(), delta);
            }
        }
        ApiRequests(diff)
    }

    pub fn total(&self, filter: impl Fn(&str, &str) -> bool) -> f64 {
        self.0
            .iter()
            .filter(|((verb, resource), _)| filter(verb, resource))
            .map(|(_, v)| v)
            .sum()
    }

    pub fn writes(&self) -> ApiRequests {
        ApiRequests(
            self.0
                .iter()
                .filter(|((verb, _), _)| WRITE_VERBS.contains(&verb.as_str()))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        )
    }
}

/// The API server's request counters now, from its own `/metrics`.
pub async fn api_requests(client: &kube::Client) -> ApiRequests {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("a metrics request");
    let text = client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    ApiRequests::parse(&text)
}
