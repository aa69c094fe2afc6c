//! Running it in production: metrics and probes, the chart's Grafana dashboard against a real
//! scrape, leader election between two replicas, graceful shutdown, and `--version`.

use entra_test_support as support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use entra_emulator::{FaultPlan, Operation};
use entra_operator::api::LeasePhase;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::Operator;
use support::lease_env::LeaseEnv;

const THREE: [&str; 3] = [
    "alice@contoso.onmicrosoft.com",
    "bob@contoso.onmicrosoft.com",
    "carol@contoso.onmicrosoft.com",
];

async fn get(port: u16, path: &str) -> (u16, String) {
    entra_operator::tls::install_crypto_provider();
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .expect("the operator's HTTP port answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// `/metrics` as Prometheus asks for it: OpenMetrics.
async fn get_openmetrics(port: u16) -> String {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .expect("the operator's HTTP port answers")
        .text()
        .await
        .expect("a body")
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_and_probes_follow_the_leases() {
    let env = LeaseEnv::start("metrics").await;
    let port = env.operator.metrics_port;
    let health_port = env.operator.health_port;
    env.wait_for("the operator to be ready", || async {
        let answer = reqwest::get(format!("http://127.0.0.1:{health_port}/readyz"))
            .await
            .ok()?;
        (answer.status() == 200).then_some(())
    })
    .await;
    assert_eq!(get(health_port, "/livez").await.0, 200);
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("one", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("one", LeasePhase::Active).await;

    let (status, active) = get(port, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&active, r#"entra_leases{phase="Active"}"#),
        Some(1.0),
        "{active}"
    );
    assert_eq!(sample(&active, "entra_lease_issues_total"), Some(1.0));
    assert_eq!(
        sample(&active, "entra_lease_time_to_credential_seconds_count"),
        Some(1.0),
        "the first issue is timed from the lease's creation"
    );
    assert!(sample(&active, "entra_lease_expiry_timestamp_seconds{").unwrap() > 1.7e9);
    let pool_series = r#"entra_pool_users{namespace=""#;
    assert!(active.contains(pool_series), "{active}");
    assert!(
        sample(
            &active,
            r#"entra_graph_requests_total{operation="set password",status="204"}"#
        ) >= Some(1.0)
    );
    assert!(active.contains("entra_reconcile_duration_seconds_bucket"));
    promtool_accepts(&active);
    let openmetrics = get_openmetrics(port).await;
    assert!(
        openmetrics.ends_with("# EOF\n"),
        "OpenMetrics for scrapers that ask for it"
    );

    env.end_lease("one").await;
    let (_, ended) = get(port, "/metrics").await;
    assert_eq!(sample(&ended, r#"entra_leases{phase="Active"}"#), Some(0.0));
    assert_eq!(sample(&ended, "entra_lease_revocations_total"), Some(1.0));
    assert!(
        !ended.contains("entra_lease_expiry_timestamp_seconds{"),
        "gone leases leave no series"
    );
    assert_eq!(
        sample(&ended, "entra_lease_revocation_lag_seconds_count"),
        Some(0.0),
        "a lease deleted before its expiry has no revocation lag"
    );
    env.create_lease(
        "short",
        json!({ "dynamicSecretRef": { "name": "pool" }, "ttl": "2s" }),
    )
    .await;
    env.wait_for_phase("short", LeasePhase::Active).await;
    env.wait_until_gone("short").await;
    let (_, expired) = get(port, "/metrics").await;
    assert_eq!(
        sample(&expired, "entra_lease_revocation_lag_seconds_count"),
        Some(1.0),
        "an expiry is timed from expiresAt to the scramble"
    );
    assert!(
        sample(&expired, "entra_lease_revocation_lag_seconds_sum") < Some(5.0),
        "{expired}"
    );

    // A client secret's expiry comes from an annotation on its Secret, as its pool's status and
    // a gauge the expiry alerts read; a malformed one is refused by name.
    let secrets = env.secrets();
    let annotate = |value: &'static str| {
        let patch = json!({ "metadata": { "annotations": {
            "kms.hanzo.ai/client-secret-expires-at": value } } });
        let secrets = secrets.clone();
        async move {
            secrets
                .patch("entra-app", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    annotate("2027-06-30T00:00:00Z").await;
    let series = format!(
        r#"entra_pool_credential_expiry_timestamp_seconds{{namespace="{}",dynamic_secret="pool"}}"#,
        env.namespace
    );
    env.wait_for("the annotated expiry in /metrics", || async {
        let (_, text) = get(port, "/metrics").await;
        (sample(&text, &series) == Some(1_814_313_600.0)).then_some(())
    })
    .await;
    let status = env.pools().get("pool").await.unwrap().status.unwrap();
    assert_eq!(
        status
            .credential_expires_at
            .map(|t| t.0.to_string())
            .as_deref(),
        Some("2027-06-30T00:00:00Z")
    );
    annotate("end of June").await;
    env.wait_for("the malformed expiry to be refused", || async {
        let status = env.pools().get("pool").await.unwrap().status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "ClientSecretExpiryInvalid").then_some(ready.message.clone())
    })
    .await;
}

/// `promtool check metrics` from the Prometheus project, built by the Makefile.
fn promtool_accepts(metrics: &str) {
    use std::io::Write;
    let promtool = std::env::var("PROMTOOL_BIN").expect("PROMTOOL_BIN is set by the Makefile");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn dashboard_queries_read_only_exported_metrics() {
    let env = LeaseEnv::start("dashboard").await;
    let port = env.operator.metrics_port;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("one", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("one", LeasePhase::Active).await;
    // A family with labels is not in /metrics at all until it has a series: renew, give the app
    // credential an expiry, and fail a revocation, so that every family the operator has shows.
    env.annotate("one", "kms.hanzo.ai/renew", "1").await;
    let expiry = json!({ "metadata": { "annotations": {
        "kms.hanzo.ai/client-secret-expires-at": "2027-06-30T00:00:00Z" } } });
    env.secrets()
        .patch("entra-app", &PatchParams::default(), &Patch::Merge(&expiry))
        .await
        .unwrap();
    let scrape_has = |series: &'static [&'static str]| async move {
        let (_, text) = get(port, "/metrics").await;
        series
            .iter()
            .all(|s| text.contains(&format!("\n{s}{{")))
            .then_some(())
    };
    env.wait_for("a renewal and the credential's expiry in /metrics", || {
        scrape_has(&[
            "entra_lease_renewals_total",
            "entra_pool_credential_expiry_timestamp_seconds",
        ])
    })
    .await;
    env.emulator
        .set_faults(FaultPlan::outage().only([Operation::SetPassword]));
    env.leases()
        .delete("one", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_for("a failed revocation in /metrics", || {
        scrape_has(&[
            "entra_lease_revocation_failures_total",
            "entra_reconcile_errors_total",
        ])
    })
    .await;

    // Prometheus asks for OpenMetrics; other scrapers get the classic format. Same series.
    let (status, classic) = get(port, "/metrics").await;
    assert_eq!(status, 200);
    let openmetrics = get_openmetrics(port).await;
    let exported = exported_series(&openmetrics);
    assert_eq!(exported, exported_series(&classic));
    env.emulator.clear_faults();
    env.wait_until_gone("one").await;

    let path = format!(
        "{}/dashboards/entra-operator.json",
        support::chart::CHART_DIR
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "{queries:?}");
    let mut problems = Vec::new();
    for query in &queries {
        let read = read_by(&query.expr);
        if read.metrics.is_empty() {
            problems.push(format!("{}: reads no metric: {}", query.panel, query.expr));
        }
        // The labels the query can group by or name: its metrics', and the scrape's own.
        let mut labels: BTreeSet<&str> = BTreeSet::from(["job", "instance"]);
        for (name, matchers) in &read.metrics {
            match exported.get(name) {
                Some(names) => labels.extend(names.iter().map(String::as_str)),
                None if name == "up" => {}
                None => problems.push(format!(
                    "{}: {name} is not exported: {}",
                    query.panel, query.expr
                )),
            }
            // Without it, one release's panels would add up every release's series.
            if !matchers.contains(r#"job=~"$job""#) {
                problems.push(format!(
                    "{}: {name} is not filtered by job=~\"$job\": {}",
                    query.panel, query.expr
                ));
            }
        }
        for label in read.labels.iter().chain(&legend_labels(&query.legend)) {
            if !labels.contains(label.as_str()) {
                problems.push(format!(
                    "{}: no series it reads has the label {label}: {}",
                    query.panel, query.expr
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the dashboard's queries:\n{}\nexported: {exported:?}",
        problems.join("\n")
    );
    // The job variable lists the jobs that have the operator's series.
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let job = variables.iter().find(|v| v["name"] == "job").unwrap();
    let listed = job["query"]["query"]
        .as_str()
        .and_then(|q| q.strip_prefix("label_values("))
        .and_then(|q| q.strip_suffix(", job)"))
        .expect("label_values(<metric>, job)");
    assert!(
        exported.contains_key(listed),
        "the job variable reads {listed}"
    );

    promtool_parses(&queries);
}

/// One query of the dashboard, as Grafana sends it.
#[derive(Debug)]
struct Query {
    panel: String,
    /// A name for it as a recording rule.
    record: String,
    expr: String,
    legend: String,
}

/// Every query of every panel, those of collapsed rows (nested in the row) included.
fn dashboard_queries(dashboard: &Value) -> Vec<Query> {
    fn walk(panels: &Value, out: &mut Vec<Query>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "an empty query in {panel}");
                out.push(Query {
                    panel: format!(
                        "panel {} \"{}\"",
                        panel["id"],
                        panel["title"].as_str().unwrap()
                    ),
                    record: format!(
                        "dashboard:panel_{}:{}",
                        panel["id"],
                        target["refId"].as_str().unwrap().to_lowercase()
                    ),
                    expr: expr.to_owned(),
                    legend: target["legendFormat"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}
/// The series an exposition holds, with the label names their samples carry, from its `# TYPE`
/// lines: a counter's samples end in `_total` (its family, in OpenMetrics, does not), a
/// histogram's are `_bucket`, `_sum` and `_count`. Every sample is checked to be one of them.
fn exported_series(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series = BTreeMap::new();
    for line in text.lines() {
        let Some(declared) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = declared.split_once(' ').expect("# TYPE <name> <type>");
        let names = match kind {
            "counter" => vec![format!("{}_total", family.trim_end_matches("_total"))],
            "histogram" => ["_bucket", "_sum", "_count"]
                .map(|suffix| format!("{family}{suffix}"))
                .to_vec(),
            _ => vec![family.to_owned()],
        };
        for name in names {
            series.insert(name, BTreeSet::new());
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.rsplit_once('}').unwrap().0),
            None => (line.split(' ').next().unwrap(), ""),
        };
        series
            .get_mut(name)
            .unwrap_or_else(|| panic!("{name} is sampled but not declared:\n{text}"))
            .extend(label_names(labels));
    }
    series
}

/// The identifiers outside quotes: the label names of `a="x", b=~"y"`.
fn label_names(matchers: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = matchers.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => _ = chars.next(),
                    '"' => break,
                    _ => {}
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut name = c.to_string();
            while let Some(&c) = chars
                .peek()
                .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
            {
                name.push(c);
                chars.next();
            }
            names.push(name);
        }
    }
    names
}

/// The labels a legend such as `{{namespace}}/{{dynamic_secret}}` shows.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(label, _)| label.trim().to_owned())
        .collect()
}

/// What a PromQL expression reads.
#[derive(Debug, PartialEq)]
struct Read {
    /// Each metric name with its selector's label matchers.
    metrics: Vec<(String, String)>,
    /// The labels it matches on or groups by.
    labels: Vec<String>,
}

/// Reads a PromQL expression as Prometheus's lexer would, far enough to tell metric names apart:
/// the identifiers outside strings, matchers and ranges that are not functions, aggregations,
/// keywords or the labels of a grouping such as `by (phase)`.
fn read_by(expr: &str) -> Read {
    const GROUPINGS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 21] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
    ];
    let chars: Vec<char> = expr.chars().collect();
    // The index just past the bracket that closes the one at `open`, stepping over strings.
    let close = |open: usize, closing: char| {
        let mut i = open + 1;
        let mut quote = None;
        while i < chars.len() {
            match (quote, chars[i]) {
                (Some(_), '\\') => i += 1,
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'' | '`') => quote = Some(chars[i]),
                (None, c) if c == closing => return i + 1,
                _ => {}
            }
            i += 1;
        }
        panic!("unclosed {} in {expr}", chars[open]);
    };
    let inside = |open: usize, end: usize| chars[open + 1..end - 1].iter().collect::<String>();
    let mut read = Read {
        metrics: Vec::new(),
        labels: Vec::new(),
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let next_char = chars.get(next).copied();
            let keyword = word.to_lowercase();
            if GROUPINGS.contains(&keyword.as_str()) && next_char == Some('(') {
                i = close(next, ')');
                read.labels.extend(label_names(&inside(next, i)));
            } else if KEYWORDS.contains(&keyword.as_str()) || next_char == Some('(') {
                // An aggregation, an operator or a function: its arguments are read on.
            } else if next_char == Some('{') {
                i = close(next, '}');
                let matchers = inside(next, i);
                read.labels.extend(label_names(&matchers));
                read.metrics.push((word, matchers));
            } else {
                read.metrics.push((word, String::new()));
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (1e9, 5m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '[' {
            i = close(i, ']');
        } else if "\"'`".contains(c) {
            // A string outside a selector (label_replace's arguments).
            let mut end = i + 1;
            while end < chars.len() && chars[end] != c {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    read
}

#[test]
fn promql_is_read_as_prometheus_reads_it() {
    let read = read_by(
        r#"histogram_quantile(0.99, sum by (operation, le) (rate(a_bucket{job=~"$job", x="}"}[5m]))) / ignoring (y) b offset 1h > bool 1e9 or vector(0) and on() c"#,
    );
    assert_eq!(
        read.metrics,
        [
            ("a_bucket".to_owned(), r#"job=~"$job", x="}""#.to_owned()),
            ("b".to_owned(), String::new()),
            ("c".to_owned(), String::new()),
        ]
    );
    assert_eq!(read.labels, ["operation", "le", "job", "x", "y"]);
    let read = read_by(r#"sum(label_replace(up, "dst", "$1", "src", "(by)"))"#);
    assert_eq!(read.metrics, [("up".to_owned(), String::new())]);
    assert_eq!(
        legend_labels("{{namespace}}/{{ dynamic_secret }} p99"),
        ["namespace", "dynamic_secret"]
    );
}

/// `promtool check rules` on every query as a recording rule, with Grafana's variables set as it
/// would set them, so that a query Prometheus cannot parse fails here rather than on a dashboard.
fn promtool_parses(queries: &[Query]) {
    let rules: Vec<Value> = queries
        .iter()
        .map(|query| {
            let expr = query
                .expr
                .replace("$__rate_interval", "5m")
                .replace("$__interval", "5m")
                .replace("$__range", "5m")
                .replace("$job", "entra-operator-metrics");
            assert!(
                !expr.contains('$'),
                "{}: a variable promtool cannot be given: {expr}",
                query.panel
            );
            json!({ "record": query.record, "expr": expr })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yaml");
    // JSON is YAML.
    let groups = json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    std::fs::write(&file, groups.to_string()).unwrap();
    let promtool = std::env::var("PROMTOOL_BIN").expect("PROMTOOL_BIN is set by the Makefile");
    let output = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let records: Vec<String> = queries
        .iter()
        .map(|q| format!("{}: {}", q.record, q.panel))
        .collect();
    assert!(
        output.status.success(),
        "promtool check rules: {said}\n{}",
        records.join("\n")
    );
    assert!(
        said.contains(&format!("{} rules found", queries.len())),
        "every query was checked: {said}"
    );
}

/// The holder of the leader-election Lease the replicas of `env` share.
async fn leader_lease_holder(env: &LeaseEnv) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.namespace);
    let lease = leases.get_opt("entra-operator-leader").await.ok()??;
    lease
        .spec?
        .holder_identity
        .filter(|holder| !holder.is_empty())
}

/// `GET path` of a replica that may not listen yet.
async fn try_get(port: u16, path: &str) -> Option<(u16, String)> {
    entra_operator::tls::install_crypto_provider();
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// `instance` holds the Lease and says so in `entra_leader`.
async fn leads(env: &LeaseEnv, replica: &Operator, instance: &str) -> Option<()> {
    let (_, text) = try_get(replica.metrics_port, "/metrics").await?;
    let holder = leader_lease_holder(env).await;
    (sample(&text, "entra_leader") == Some(1.0) && holder.as_deref() == Some(instance))
        .then_some(())
}

/// The replica is ready (its caches synced) and does not lead.
async fn stands_by(replica: &Operator) -> Option<()> {
    let (ready, _) = try_get(replica.health_port, "/readyz").await?;
    let (_, text) = try_get(replica.metrics_port, "/metrics").await?;
    (ready == 200 && sample(&text, "entra_leader") == Some(0.0)).then_some(())
}

fn leader_args() -> Vec<String> {
    vec![
        "--leader-elect".into(),
        "--leader-election-lease-duration-seconds=6".into(),
    ]
}

#[tokio::test]
async fn only_the_leader_acts_and_a_standby_takes_over() {
    let mut env = LeaseEnv::start("leader").await;
    // Replace the default operator by two replicas that elect a leader.
    env.operator.kill();
    let control_plane = env.control_plane;
    let url = env.emulator.base_url();
    let ns = env.namespace.clone();
    let mut first = Operator::start_with(control_plane, &url, &ns, &ns, "first", leader_args());
    env.wait_for("the first replica to lead", || leads(&env, &first, "first"))
        .await;
    let mut second = Operator::start_with(control_plane, &url, &ns, &ns, "second", leader_args());
    env.wait_for("the second replica to stand by", || stands_by(&second))
        .await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("one", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("one", LeasePhase::Active).await;
    let issued = |port| async move {
        let (_, text) = get(port, "/metrics").await;
        sample(&text, "entra_lease_issues_total")
    };
    assert_eq!(
        issued(first.metrics_port).await,
        Some(1.0),
        "the leader issued"
    );
    assert_eq!(
        issued(second.metrics_port).await,
        Some(0.0),
        "the standby did not"
    );
    let (_, standby) = get(second.metrics_port, "/metrics").await;
    assert!(
        !standby.contains("entra_reconcile_duration_seconds_count{"),
        "the standby did not reconcile: {standby}"
    );

    // The leader dies without releasing its lease: the standby takes over within its duration.
    first.kill();
    let killed = std::time::Instant::now();
    env.wait_for("the standby to take over", || {
        leads(&env, &second, "second")
    })
    .await;
    let handover = killed.elapsed();
    assert!(
        handover < Duration::from_secs(6 + 6),
        "took over in {handover:?}"
    );
    env.create_lease("two", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("two", LeasePhase::Active).await;
    assert!(second.is_running());

    // No lease was issued twice, and none is left unrevoked.
    assert_eq!(env.emulator.counters().operation(Operation::SetPassword), 2);
    let credentials = [
        env.credentials("entra-one").await,
        env.credentials("entra-two").await,
    ];
    for name in ["one", "two"] {
        env.leases()
            .delete(name, &Default::default())
            .await
            .unwrap();
        env.wait_until_gone(name).await;
    }
    for (user, password) in credentials {
        assert!(!env.emulator.sign_in(&user, &password));
    }
    drop(first);
    drop(second);
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_releases_leadership() {
    let mut env = LeaseEnv::start("sigterm").await;
    env.operator.kill();
    let control_plane = env.control_plane;
    let url = env.emulator.base_url();
    let ns = env.namespace.clone();
    let slow = leader_args();
    let mut first = Operator::start_with(control_plane, &url, &ns, &ns, "first", slow.clone());
    env.wait_for("the first replica to lead", || leads(&env, &first, "first"))
        .await;
    let second = Operator::start_with(control_plane, &url, &ns, &ns, "second", slow);
    env.wait_for("the second replica to stand by", || stands_by(&second))
        .await;
    let status = first.terminate();
    assert!(status.success(), "exit status {status}");
    // Released: the Lease names no holder any more (or already the standby).
    let holder = leader_lease_holder(&env).await;
    assert!(
        holder.as_deref() != Some("first"),
        "leadership released on exit: {holder:?}"
    );
    let stopped = std::time::Instant::now();
    env.wait_for("the standby to take over", || {
        leads(&env, &second, "second")
    })
    .await;
    // The standby sleeps until the lease it last saw would expire, then finds it released.
    assert!(
        stopped.elapsed() < Duration::from_secs(6 + 6),
        "handover within the lease duration"
    );
}

#[test]
fn version_flag_prints_the_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_entra-operator"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.trim(),
        format!("entra-operator {}", env!("CARGO_PKG_VERSION"))
    );
}
