//! Writing events through the shared recorder.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::Context;
use crate::controller::reasons::Reason;

impl Context {
    /// Publishes an event about `object`. Event notes carry no secret material: they are built
    /// from names, reasons and Graph error messages, which never include secrets.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: Reason,
        action: &str,
        note: String,
    ) {
        // Without the resourceVersion, repeats of a warning about one object form a series.
        let mut regarding = object.object_ref(&());
        regarding.resource_version = None;
        self.publish_about(regarding, type_, reason, action, note)
            .await;
    }

    /// Publishes an event about the object `regarding` refers to.
    pub async fn publish_about(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: Reason,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.as_str().to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.events.publish(event, regarding).await {
            tracing::warn!(%error, %reason, "could not publish an event");
        }
    }
}
