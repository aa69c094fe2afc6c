//! Events about leases and dynamic secrets. Normal events are created directly: kube's `Recorder`
//! keeps every event it publishes for six minutes to count repeats, which at thousands of issues
//! costs megabytes and a scan of the whole cache per event. Warnings repeat (a revocation retried
//! during an outage), so they go through the `Recorder`, which turns repeats into a series.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

pub struct Events {
    client: Client,
    reporter: Reporter,
    warnings: Recorder,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            warnings: Recorder::new(client.clone(), reporter.clone()),
            client,
            reporter,
        }
    }

    pub async fn publish(&self, event: Event, regarding: ObjectReference) -> kube::Result<()> {
        if event.type_ == EventType::Warning {
            return self.warnings.publish(&event, &regarding).await;
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let created = self.normal_event(event, regarding);
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &created)
            .await
            .map(|_| ())
    }

    /// The event as kube's `Recorder` would first create it.
    fn normal_event(&self, event: Event, regarding: ObjectReference) -> K8sEvent {
        let now = Timestamp::now();
        let name = regarding
            .name
            .clone()
            .unwrap_or_else(|| self.reporter.controller.clone());
        K8sEvent {
            action: Some(event.action),
            reason: Some(event.reason),
            note: event.note,
            event_time: Some(MicroTime(now)),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            regarding: Some(regarding),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some("Normal".into()),
            ..K8sEvent::default()
        }
    }
}
