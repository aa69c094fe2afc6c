//! A cache that keeps a small summary per object instead of the object, for the kinds the
//! operator has one of per lease (Secrets, claims) and reads only a few facts from: a typed
//! reflector store costs kilobytes per object, a summary tens of bytes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::watcher;
use tokio::sync::watch;

type ByNamespace<V> = HashMap<String, HashMap<String, V>>;

/// The reading side, shared by the reconcilers.
pub struct Index<V> {
    live: Arc<RwLock<ByNamespace<V>>>,
    ready: watch::Receiver<bool>,
}

impl<V> Clone for Index<V> {
    fn clone(&self) -> Self {
        Index {
            live: self.live.clone(),
            ready: self.ready.clone(),
        }
    }
}

/// The writing side, fed by one watch.
pub struct IndexWriter<V> {
    live: Arc<RwLock<ByNamespace<V>>>,
    ready: watch::Sender<bool>,
    /// The objects of a (re)list in progress: the live map is swapped for them when it completes,
    /// which also drops the objects deleted while the watch was down.
    relisting: Option<ByNamespace<V>>,
}

/// An index and its writer.
pub fn index<V>() -> (Index<V>, IndexWriter<V>) {
    let live = Arc::new(RwLock::new(HashMap::new()));
    let (ready_tx, ready) = watch::channel(false);
    let writer = IndexWriter {
        live: live.clone(),
        ready: ready_tx,
        relisting: None,
    };
    (Index { live, ready }, writer)
}

impl<V: Clone> Index<V> {
    /// The summary of the object `name` in `namespace` (empty for cluster-scoped objects).
    pub fn get(&self, namespace: &str, name: &str) -> Option<V> {
        self.live
            .read()
            .unwrap()
            .get(namespace)
            .and_then(|names| names.get(name))
            .cloned()
    }
}

impl<V: Clone> Index<V> {
    /// The names and summaries of every object in `namespace` whose summary matches.
    pub fn find(&self, namespace: &str, matches: impl Fn(&V) -> bool) -> Vec<(String, V)> {
        self.live
            .read()
            .unwrap()
            .get(namespace)
            .into_iter()
            .flatten()
            .filter(|(_, value)| matches(value))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

impl<V> Index<V> {
    /// Changes the summary of `namespace/name` with `change`, when the index has one: what a
    /// reconcile learnt by reading the object itself.
    pub fn update(&self, namespace: &str, name: &str, change: impl FnOnce(&mut V)) {
        if let Some(value) = self
            .live
            .write()
            .unwrap()
            .get_mut(namespace)
            .and_then(|names| names.get_mut(name))
        {
            change(value);
        }
    }

    /// Resolves once the first full list is in, or fails when the writer is gone first.
    pub async fn wait_until_ready(&self) -> Result<(), watch::error::RecvError> {
        self.ready
            .clone()
            .wait_for(|ready| *ready)
            .await
            .map(|_| ())
    }
}

impl<V> IndexWriter<V> {
    /// Applies one watch event, summarising objects with `summary`.
    pub fn apply<K: kube::Resource>(
        &mut self,
        event: &watcher::Event<K>,
        summary: impl Fn(&K) -> V,
    ) {
        self.apply_keeping(event, |object, _| summary(object));
    }

    /// Applies one watch event, summarising objects with `summary` given the summary the index
    /// had of the same object, so that what the watch does not carry can be kept.
    pub fn apply_keeping<K: kube::Resource>(
        &mut self,
        event: &watcher::Event<K>,
        summary: impl Fn(&K, Option<&V>) -> V,
    ) {
        let place = |object: &K| (object.namespace().unwrap_or_default(), object.name_any());
        match event {
            watcher::Event::Init => self.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                let (namespace, name) = place(object);
                let value = {
                    let live = self.live.read().unwrap();
                    summary(
                        object,
                        live.get(&namespace).and_then(|names| names.get(&name)),
                    )
                };
                let relisting = self.relisting.get_or_insert_with(HashMap::new);
                relisting.entry(namespace).or_default().insert(name, value);
            }
            watcher::Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                *self.live.write().unwrap() = listed;
                self.ready.send_replace(true);
            }
            watcher::Event::Apply(object) => {
                let (namespace, name) = place(object);
                let mut live = self.live.write().unwrap();
                let names = live.entry(namespace).or_default();
                let value = summary(object, names.get(&name));
                names.insert(name, value);
            }
            watcher::Event::Delete(object) => {
                let (namespace, name) = place(object);
                let mut live = self.live.write().unwrap();
                if let Some(names) = live.get_mut(&namespace) {
                    names.remove(&name);
                    if names.is_empty() {
                        live.remove(&namespace);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn object(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team".into()),
                ..ObjectMeta::default()
            },
            data: Some([("value".to_owned(), value.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    fn value(object: &ConfigMap) -> String {
        object.data.as_ref().unwrap()["value"].clone()
    }

    #[tokio::test]
    async fn a_relist_replaces_everything_and_changes_apply_in_between() {
        let (index, mut writer) = index::<String>();
        writer.apply(&watcher::Event::Init, value);
        writer.apply(&watcher::Event::InitApply(object("a", "1")), value);
        writer.apply(&watcher::Event::InitApply(object("b", "1")), value);
        assert_eq!(
            index.get("team", "a"),
            None,
            "nothing is live before the list completes"
        );
        writer.apply(&watcher::Event::InitDone, value);
        index.wait_until_ready().await.unwrap();
        assert_eq!(index.get("team", "a").as_deref(), Some("1"));

        writer.apply(&watcher::Event::Apply(object("a", "2")), value);
        writer.apply(&watcher::Event::Delete(object("b", "1")), value);
        assert_eq!(index.get("team", "a").as_deref(), Some("2"));
        assert_eq!(index.get("team", "b"), None);

        // The watch restarted and "a" was deleted meanwhile: the relist drops it.
        writer.apply(&watcher::Event::Init, value);
        writer.apply(&watcher::Event::InitApply(object("c", "1")), value);
        writer.apply(&watcher::Event::InitDone, value);
        assert_eq!(index.get("team", "a"), None);
        assert_eq!(index.get("team", "c").as_deref(), Some("1"));
        assert_eq!(index.get("other", "c"), None);
    }
}
