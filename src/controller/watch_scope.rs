//! Which namespaces the operator serves: all, one, or a list (a Role in each, no cluster-wide
//! read). A list is served by one watch per namespace, merged so that the caches behind them see
//! one consistent stream: a single initial list that completes once every namespace has listed,
//! and afterwards, when one namespace's watch lists again (it fell behind), the objects that list
//! no longer shows deleted one by one instead of the whole cache being replaced.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, BoxStream, StreamExt};
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::backoff::watch_backoff;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchScope {
    All,
    Namespaces(Vec<String>),
}

impl WatchScope {
    /// The scope of a `--namespace` value: none or empty for all namespaces, else the listed ones.
    pub fn of(namespaces: &[String]) -> WatchScope {
        let mut listed: Vec<String> = namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        listed.sort();
        listed.dedup();
        if listed.is_empty() {
            WatchScope::All
        } else {
            WatchScope::Namespaces(listed)
        }
    }

    /// Watches `K` in the scope. `known(namespace)` returns what the cache fed by this stream holds
    /// in a namespace, to tell which objects a namespace's relist no longer shows.
    pub fn watch<K>(
        &self,
        client: &Client,
        config: watcher::Config,
        known: impl Fn(&str) -> Vec<K> + Send + 'static,
    ) -> BoxStream<'static, Result<Event<K>, watcher::Error>>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
        K::DynamicType: Default,
    {
        match self {
            WatchScope::All => watcher(Api::<K>::all(client.clone()), config)
                .backoff(watch_backoff())
                .boxed(),
            WatchScope::Namespaces(namespaces) if namespaces.len() == 1 => {
                watcher(Api::<K>::namespaced(client.clone(), &namespaces[0]), config)
                    .backoff(watch_backoff())
                    .boxed()
            }
            WatchScope::Namespaces(namespaces) => {
                let watches = namespaces.iter().map(|namespace| {
                    let tag = namespace.clone();
                    // Each namespace backs off on its own: one failing watch does not hold back
                    // the others.
                    watcher(
                        Api::<K>::namespaced(client.clone(), namespace),
                        config.clone(),
                    )
                    .backoff(watch_backoff())
                    .map(move |event| (tag.clone(), event))
                    .boxed()
                });
                let mut merge = Merge::new(namespaces, known);
                stream::select_all(watches)
                    .flat_map(move |(namespace, event)| stream::iter(merge.on(&namespace, event)))
                    .boxed()
            }
        }
    }

    /// Lists `K` in every namespace of the scope.
    pub async fn list<K>(&self, client: &Client, params: &ListParams) -> kube::Result<Vec<K>>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match self {
            WatchScope::All => Ok(Api::<K>::all(client.clone()).list(params).await?.items),
            WatchScope::Namespaces(namespaces) => {
                let mut all = Vec::new();
                for namespace in namespaces {
                    let api = Api::<K>::namespaced(client.clone(), namespace);
                    all.extend(api.list(params).await?.items);
                }
                Ok(all)
            }
        }
    }
}

/// Merges the events of one watch per namespace into the events of one watch.
struct Merge<K, F> {
    /// Namespaces whose first list has not completed: the merged initial list waits for them.
    initial: HashSet<String>,
    init_sent: bool,
    /// Names listed so far by each namespace relisting after the initial list.
    relisting: HashMap<String, HashSet<String>>,
    known: F,
    _kind: std::marker::PhantomData<K>,
}

impl<K: Resource + Clone, F: Fn(&str) -> Vec<K>> Merge<K, F> {
    fn new(namespaces: &[String], known: F) -> Self {
        Merge {
            initial: namespaces.iter().cloned().collect(),
            init_sent: false,
            relisting: HashMap::new(),
            known,
            _kind: std::marker::PhantomData,
        }
    }

    fn on(
        &mut self,
        namespace: &str,
        event: Result<Event<K>, watcher::Error>,
    ) -> Vec<Result<Event<K>, watcher::Error>> {
        let event = match event {
            Ok(event) => event,
            Err(error) => return vec![Err(error)],
        };
        let merged_initial_open = !self.initial.is_empty();
        match event {
            Event::Init if merged_initial_open => {
                // A namespace listing again before every other has listed once joins the
                // initial list again; its objects overwrite their first versions there.
                self.initial.insert(namespace.to_owned());
                if std::mem::replace(&mut self.init_sent, true) {
                    vec![]
                } else {
                    vec![Ok(Event::Init)]
                }
            }
            Event::Init => {
                self.relisting.insert(namespace.to_owned(), HashSet::new());
                vec![]
            }
            Event::InitApply(object) if self.initial.contains(namespace) => {
                vec![Ok(Event::InitApply(object))]
            }
            Event::InitApply(object) => {
                if let Some(seen) = self.relisting.get_mut(namespace) {
                    seen.insert(object.name_any());
                }
                vec![Ok(Event::Apply(object))]
            }
            Event::InitDone if self.initial.contains(namespace) => {
                self.initial.remove(namespace);
                if self.initial.is_empty() {
                    vec![Ok(Event::InitDone)]
                } else {
                    vec![]
                }
            }
            Event::InitDone => {
                let seen = self.relisting.remove(namespace).unwrap_or_default();
                (self.known)(namespace)
                    .into_iter()
                    .filter(|object| !seen.contains(&object.name_any()))
                    .map(|gone| Ok(Event::Delete(gone)))
                    .collect()
            }
            event @ (Event::Apply(_) | Event::Delete(_)) => vec![Ok(event)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::sync::{Arc, Mutex};

    fn object(namespace: &str, name: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some(namespace.into());
        object.metadata.name = Some(name.into());
        object
    }

    fn kinds(events: &[Result<Event<ConfigMap>, watcher::Error>]) -> Vec<String> {
        events
            .iter()
            .map(|event| match event {
                Ok(Event::Init) => "Init".to_owned(),
                Ok(Event::InitApply(o)) => format!("InitApply {}", o.name_any()),
                Ok(Event::InitDone) => "InitDone".to_owned(),
                Ok(Event::Apply(o)) => format!("Apply {}", o.name_any()),
                Ok(Event::Delete(o)) => format!("Delete {}", o.name_any()),
                Err(_) => "Err".to_owned(),
            })
            .collect()
    }

    #[test]
    fn one_initial_list_completes_when_every_namespace_has_listed() {
        let namespaces = ["a".to_owned(), "b".to_owned()];
        let mut merge = Merge::new(&namespaces, |_: &str| Vec::<ConfigMap>::new());
        let mut events = Vec::new();
        events.extend(merge.on("a", Ok(Event::Init)));
        events.extend(merge.on("b", Ok(Event::Init)));
        events.extend(merge.on("a", Ok(Event::InitApply(object("a", "one")))));
        events.extend(merge.on("a", Ok(Event::InitDone)));
        events.extend(merge.on("b", Ok(Event::InitApply(object("b", "two")))));
        events.extend(merge.on("a", Ok(Event::Apply(object("a", "three")))));
        events.extend(merge.on("b", Ok(Event::InitDone)));
        assert_eq!(
            kinds(&events),
            [
                "Init",
                "InitApply one",
                "InitApply two",
                "Apply three",
                "InitDone"
            ]
        );
    }

    #[test]
    fn a_namespace_listing_again_deletes_only_its_objects_the_list_no_longer_shows() {
        let cache = Arc::new(Mutex::new(vec![
            object("a", "kept"),
            object("a", "gone"),
            object("b", "elsewhere"),
        ]));
        let known = {
            let cache = cache.clone();
            move |namespace: &str| {
                let cache = cache.lock().unwrap();
                cache
                    .iter()
                    .filter(|o| o.metadata.namespace.as_deref() == Some(namespace))
                    .cloned()
                    .collect::<Vec<_>>()
            }
        };
        let namespaces = ["a".to_owned(), "b".to_owned()];
        let mut merge = Merge::new(&namespaces, known);
        for namespace in ["a", "b"] {
            merge.on(namespace, Ok(Event::Init));
            merge.on(namespace, Ok(Event::InitDone));
        }
        let mut events = Vec::new();
        events.extend(merge.on("a", Ok(Event::Init)));
        events.extend(merge.on("a", Ok(Event::InitApply(object("a", "kept")))));
        events.extend(merge.on("a", Ok(Event::InitDone)));
        assert_eq!(kinds(&events), ["Apply kept", "Delete gone"]);
    }

    #[test]
    fn an_empty_namespace_list_is_every_namespace() {
        assert_eq!(WatchScope::of(&[]), WatchScope::All);
        assert_eq!(WatchScope::of(&[" ".into()]), WatchScope::All);
        assert_eq!(
            WatchScope::of(&["b".into(), "a".into(), "b".into()]),
            WatchScope::Namespaces(vec!["a".into(), "b".into()])
        );
    }
}
