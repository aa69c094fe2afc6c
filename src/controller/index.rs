//! A cache that keeps a small summary per object instead of the object, for the kinds the
//! operator has one of per lease (Secrets, claims) and reads only a few facts from: a typed
//! reflector store costs kilobytes per object, a summary tens of bytes.
//!
//! Beside the summaries it keeps notes of what reconciles did ahead of the watch: an object
//! they wrote, whose summary the watch's event of that very version takes (so what the operator
//! wrote is never read back), and an object they deleted, known absent until the watch shows
//! another of that name. A note never changes what the watch shows of another version or another
//! object, so a late or lost note costs at most a read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kube::ResourceExt;
use kube::core::ObjectMeta;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::time::Instant;

type ByNamespace<V> = HashMap<String, HashMap<String, V>>;

/// How long a note is kept. The watch shows a write within seconds; a deletion answers for the
/// object's absence this long only, so that an object the watch cannot see (a Secret without the
/// operator's label, made after the deletion) is found by a read after it.
const NOTES_KEPT_FOR: Duration = Duration::from_secs(5 * 60);

/// At most this many notes: when full, the expired ones go first, then the oldest.
const MAX_NOTES: usize = 4096;

/// A summary that names the resourceVersion of the object it describes.
pub trait Versioned {
    fn resource_version(&self) -> &str;
}

/// The reading side, shared by the reconcilers.
pub struct Index<V> {
    shared: Arc<RwLock<Shared<V>>>,
    ready: watch::Receiver<bool>,
}

impl<V> Clone for Index<V> {
    fn clone(&self) -> Self {
        Index {
            shared: self.shared.clone(),
            ready: self.ready.clone(),
        }
    }
}

/// The writing side, fed by one watch.
pub struct IndexWriter<V> {
    shared: Arc<RwLock<Shared<V>>>,
    ready: watch::Sender<bool>,
}

struct Shared<V> {
    live: ByNamespace<V>,
    /// The objects of a (re)list in progress: the live map is swapped for them when it completes,
    /// which also drops the objects deleted while the watch was down.
    relisting: Option<ByNamespace<V>>,
    /// Kept apart from both maps, so that a relist's swap neither loses nor applies them.
    notes: Notes<V>,
}

/// An index and its writer.
pub fn index<V>() -> (Index<V>, IndexWriter<V>) {
    let shared = Arc::new(RwLock::new(Shared {
        live: HashMap::new(),
        relisting: None,
        notes: Notes::default(),
    }));
    let (ready_tx, ready) = watch::channel(false);
    let writer = IndexWriter {
        shared: shared.clone(),
        ready: ready_tx,
    };
    (Index { shared, ready }, writer)
}

impl<V: Clone> Index<V> {
    /// The summary of the object `name` in `namespace` (empty for cluster-scoped objects).
    pub fn get(&self, namespace: &str, name: &str) -> Option<V> {
        self.shared
            .read()
            .unwrap()
            .live
            .get(namespace)
            .and_then(|names| names.get(name))
            .cloned()
    }

    /// The names and summaries of every object in `namespace` whose summary matches.
    pub fn find(&self, namespace: &str, matches: impl Fn(&V) -> bool) -> Vec<(String, V)> {
        self.shared
            .read()
            .unwrap()
            .live
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
            .shared
            .write()
            .unwrap()
            .live
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

    /// Whether a reconcile deleted `namespace/name` lately (or found nothing to delete), and the
    /// watch has shown no other object of that name since.
    pub fn deleted_lately(&self, namespace: &str, name: &str) -> bool {
        let shared = self.shared.read().unwrap();
        shared.notes.get(namespace, name).is_some_and(|note| {
            matches!(note.ahead, Ahead::Deleted { .. }) && note.is_fresh(Instant::now())
        })
    }

    /// Notes that a reconcile deleted the object `uid` at `namespace/name`, or, without `uid`,
    /// found none there to delete. Only for an object known gone: not one still finalizing.
    pub fn note_deleted(&self, namespace: &str, name: &str, uid: Option<&str>) {
        let deleted = Ahead::Deleted {
            uid: uid.map(str::to_owned),
        };
        let mut shared = self.shared.write().unwrap();
        // Another object written there may have come after this deletion: the watch tells.
        if let Some(Ahead::Written { uid: written, .. }) =
            shared.notes.get(namespace, name).map(|note| &note.ahead)
            && uid != Some(written.as_str())
        {
            return;
        }
        shared
            .notes
            .insert(namespace, name, deleted, Instant::now());
    }

    /// Drops what was noted of `namespace/name`: a reconcile found there what contradicts it.
    pub fn forget_note(&self, namespace: &str, name: &str) {
        self.shared.write().unwrap().notes.remove(namespace, name);
    }
}

impl<V: Versioned + Clone> Index<V> {
    /// Notes that a reconcile wrote the object `uid` at `namespace/name`, as `written` summarises
    /// it. An entry that shows that very version takes it now; else the watch's event of that
    /// uid and version will. A later version (someone else's edit) keeps its own summary.
    pub fn note_written(&self, namespace: &str, name: &str, uid: &str, written: V) {
        let mut shared = self.shared.write().unwrap();
        let Shared {
            live,
            relisting,
            notes,
        } = &mut *shared;
        // The object was written before its deletion: a late note of the write changes nothing.
        if let Some(Ahead::Deleted { uid: Some(deleted) }) =
            notes.get(namespace, name).map(|note| &note.ahead)
            && deleted == uid
        {
            return;
        }
        let version = written.resource_version();
        let mut shown = false;
        for entries in std::iter::once(live).chain(relisting.as_mut()) {
            if let Some(entry) = entries.get_mut(namespace).and_then(|n| n.get_mut(name))
                && entry.resource_version() == version
            {
                *entry = written.clone();
                shown = true;
            }
        }
        if shown {
            // The object written is there: whatever deletion was noted came before it.
            if let Some(Ahead::Deleted { .. }) = notes.get(namespace, name).map(|note| &note.ahead)
            {
                notes.remove(namespace, name);
            }
        } else {
            let ahead = Ahead::Written {
                uid: uid.to_owned(),
                resource_version: version.to_owned(),
                summary: written,
            };
            notes.insert(namespace, name, ahead, Instant::now());
        }
    }
}

impl<V: Clone> IndexWriter<V> {
    /// Applies one watch event, summarising objects with `summary`.
    pub fn apply<K: kube::Resource>(
        &mut self,
        event: &watcher::Event<K>,
        summary: impl Fn(&K) -> V,
    ) {
        self.apply_keeping(event, |object, _| summary(object));
    }

    /// Applies one watch event, summarising objects with `summary` given the summary the index
    /// had of the same object (or a reconcile noted of this very version of it), so that what
    /// the watch does not carry can be kept.
    pub fn apply_keeping<K: kube::Resource>(
        &mut self,
        event: &watcher::Event<K>,
        summary: impl Fn(&K, Option<&V>) -> V,
    ) {
        let place = |object: &K| (object.namespace().unwrap_or_default(), object.name_any());
        let mut shared = self.shared.write().unwrap();
        let Shared {
            live,
            relisting,
            notes,
        } = &mut *shared;
        match event {
            watcher::Event::Init => *relisting = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                let (namespace, name) = place(object);
                let written = notes.take_shown(&namespace, &name, object.meta());
                let known = written.as_ref().or_else(|| entry(live, &namespace, &name));
                let value = summary(object, known);
                let relisting = relisting.get_or_insert_with(HashMap::new);
                relisting.entry(namespace).or_default().insert(name, value);
            }
            watcher::Event::InitDone => {
                *live = relisting.take().unwrap_or_default();
                self.ready.send_replace(true);
            }
            watcher::Event::Apply(object) => {
                let (namespace, name) = place(object);
                let written = notes.take_shown(&namespace, &name, object.meta());
                let known = written
                    .as_ref()
                    .or_else(|| relisting.as_ref().and_then(|r| entry(r, &namespace, &name)))
                    .or_else(|| entry(live, &namespace, &name));
                let value = summary(object, known);
                // A change during a relist (one namespace's, while others still list) goes to
                // the list too, which the live map is about to be swapped for.
                if let Some(relisting) = relisting {
                    let names = relisting.entry(namespace.clone()).or_default();
                    names.insert(name.clone(), value.clone());
                }
                live.entry(namespace).or_default().insert(name, value);
            }
            watcher::Event::Delete(object) => {
                let (namespace, name) = place(object);
                notes.on_deleted(&namespace, &name, object.meta().uid.as_deref());
                for entries in std::iter::once(live).chain(relisting.as_mut()) {
                    if let Some(names) = entries.get_mut(&namespace) {
                        names.remove(&name);
                        if names.is_empty() {
                            entries.remove(&namespace);
                        }
                    }
                }
            }
        }
    }
}

fn entry<'a, V>(entries: &'a ByNamespace<V>, namespace: &str, name: &str) -> Option<&'a V> {
    entries.get(namespace).and_then(|names| names.get(name))
}

/// What reconciles did to objects ahead of the watch, by namespace and name.
struct Notes<V> {
    by_namespace: ByNamespace<Note<V>>,
}

impl<V> Default for Notes<V> {
    fn default() -> Self {
        Notes {
            by_namespace: HashMap::new(),
        }
    }
}

struct Note<V> {
    noted_at: Instant,
    ahead: Ahead<V>,
}

enum Ahead<V> {
    /// The object `uid` as a reconcile wrote it, at `resource_version`.
    Written {
        uid: String,
        resource_version: String,
        summary: V,
    },
    /// A reconcile deleted the object `uid`, or found no object to delete (`None`).
    Deleted { uid: Option<String> },
}

impl<V> Note<V> {
    fn is_fresh(&self, now: Instant) -> bool {
        now.duration_since(self.noted_at) < NOTES_KEPT_FOR
    }
}

impl<V> Notes<V> {
    fn get(&self, namespace: &str, name: &str) -> Option<&Note<V>> {
        entry(&self.by_namespace, namespace, name)
    }

    fn len(&self) -> usize {
        self.by_namespace.values().map(HashMap::len).sum()
    }

    /// Notes `ahead` at `namespace/name`, in place of what was noted there.
    fn insert(&mut self, namespace: &str, name: &str, ahead: Ahead<V>, now: Instant) {
        if self.get(namespace, name).is_none() && self.len() >= MAX_NOTES {
            self.make_room(now);
        }
        let note = Note {
            noted_at: now,
            ahead,
        };
        let names = self.by_namespace.entry(namespace.to_owned()).or_default();
        names.insert(name.to_owned(), note);
    }

    fn remove(&mut self, namespace: &str, name: &str) -> Option<Note<V>> {
        let names = self.by_namespace.get_mut(namespace)?;
        let note = names.remove(name);
        if names.is_empty() {
            self.by_namespace.remove(namespace);
        }
        note
    }

    /// Drops the expired notes and, when none had, the oldest.
    fn make_room(&mut self, now: Instant) {
        let before = self.len();
        for names in self.by_namespace.values_mut() {
            names.retain(|_, note| note.is_fresh(now));
        }
        self.by_namespace.retain(|_, names| !names.is_empty());
        if self.len() < before {
            return;
        }
        let oldest = self
            .by_namespace
            .iter()
            .flat_map(|(namespace, names)| {
                names
                    .iter()
                    .map(move |(name, note)| (namespace, name, note))
            })
            .min_by_key(|(_, _, note)| note.noted_at)
            .map(|(namespace, name, _)| (namespace.clone(), name.clone()));
        if let Some((namespace, name)) = oldest {
            self.remove(&namespace, &name);
        }
    }

    /// What the watch showing the object `shown` at `namespace/name` does to its note: a write of
    /// that very uid and version is taken (and answered); a deletion gives way to any other
    /// object of that name, or to any object when which one was deleted is not known. A write
    /// of another version stays for its own event.
    fn take_shown(&mut self, namespace: &str, name: &str, shown: &ObjectMeta) -> Option<V> {
        let note = self.get(namespace, name)?;
        let keep = match &note.ahead {
            Ahead::Written {
                uid,
                resource_version,
                ..
            } => {
                shown.uid.as_ref() != Some(uid)
                    || shown.resource_version.as_ref() != Some(resource_version)
            }
            Ahead::Deleted { uid } => uid.is_some() && shown.uid == *uid,
        };
        if keep {
            return None;
        }
        match self.remove(namespace, name)?.ahead {
            Ahead::Written { summary, .. } => Some(summary),
            Ahead::Deleted { .. } => None,
        }
    }

    /// What the watch reporting the object `uid` at `namespace/name` deleted does to its note: a
    /// write of that object (or of an object the report does not name) will never be shown; a
    /// deletion is confirmed.
    fn on_deleted(&mut self, namespace: &str, name: &str, uid: Option<&str>) {
        let Some(note) = self.get(namespace, name) else {
            return;
        };
        let gone = match &note.ahead {
            Ahead::Written { uid: written, .. } => uid.is_none_or(|uid| uid == written),
            Ahead::Deleted { .. } => false,
        };
        if gone {
            self.remove(namespace, name);
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

    #[tokio::test]
    async fn changes_during_a_merged_initial_list_survive_its_end() {
        // One namespace's watch has listed and streams changes while another still lists.
        let (index, mut writer) = index::<String>();
        writer.apply(&watcher::Event::Init, value);
        writer.apply(&watcher::Event::InitApply(object("a", "1")), value);
        writer.apply(&watcher::Event::InitApply(object("b", "1")), value);
        writer.apply(&watcher::Event::Apply(object("a", "2")), value);
        writer.apply(&watcher::Event::Delete(object("b", "1")), value);
        writer.apply(&watcher::Event::Apply(object("c", "1")), value);
        writer.apply(&watcher::Event::InitDone, value);
        assert_eq!(index.get("team", "a").as_deref(), Some("2"));
        assert_eq!(index.get("team", "b"), None);
        assert_eq!(index.get("team", "c").as_deref(), Some("1"));
    }

    /// Notes ahead of the watch, with the Secret summaries they are kept for.
    mod notes {
        use super::*;
        use crate::fixtures::{lease, lease_secret};
        use crate::secret::SecretSummary;
        use k8s_openapi::api::core::v1::Secret;
        use kube::core::{PartialObjectMeta, PartialObjectMetaExt};

        const NAME: &str = "entra-ci";

        /// The lease's Secret as the API server answers a write of it.
        fn written(uid: &str, version: &str) -> Secret {
            let mut secret = lease_secret(&lease());
            secret.metadata.uid = Some(uid.into());
            secret.metadata.resource_version = Some(version.into());
            secret
        }

        /// The Secret `uid` at `version` as the metadata watch shows it.
        fn shown(uid: &str, version: &str) -> PartialObjectMeta<Secret> {
            written(uid, version)
                .metadata
                .into_response_partial::<Secret>()
        }

        /// A Secret index whose first (empty) list is in.
        fn secrets() -> (Index<SecretSummary>, IndexWriter<SecretSummary>) {
            let (index, mut writer) = index::<SecretSummary>();
            watch(&mut writer, watcher::Event::Init);
            watch(&mut writer, watcher::Event::InitDone);
            (index, writer)
        }

        fn watch(
            writer: &mut IndexWriter<SecretSummary>,
            event: watcher::Event<PartialObjectMeta<Secret>>,
        ) {
            writer.apply_keeping(&event, SecretSummary::of_watched);
        }

        fn note_written(index: &Index<SecretSummary>, uid: &str, version: &str) {
            let summary = SecretSummary::of(&written(uid, version));
            index.note_written("team", NAME, uid, summary);
        }

        /// Whether the cache can answer for the Secret's data (`Context::secret` reads it if not).
        fn as_written(index: &Index<SecretSummary>) -> Option<bool> {
            index.get("team", NAME)?.data_as_written()
        }

        fn notes(index: &Index<SecretSummary>) -> usize {
            index.shared.read().unwrap().notes.len()
        }

        #[test]
        fn a_write_noted_before_the_watch_shows_it_is_trusted_when_it_does() {
            let (index, mut writer) = secrets();
            note_written(&index, "uid-1", "10");
            assert_eq!(index.get("team", NAME), None, "not shown yet: read");
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "10")));
            assert_eq!(as_written(&index), Some(true));
            assert_eq!(notes(&index), 0, "the note is taken");
        }

        #[test]
        fn a_write_the_watch_showed_first_is_trusted_once_noted() {
            let (index, mut writer) = secrets();
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "10")));
            assert_eq!(as_written(&index), None);
            note_written(&index, "uid-1", "10");
            assert_eq!(as_written(&index), Some(true));
            assert_eq!(notes(&index), 0, "nothing left to wait for");
        }

        #[test]
        fn an_edit_after_the_write_is_read_again() {
            let (index, mut writer) = secrets();
            note_written(&index, "uid-1", "10");
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "10")));
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "11")));
            assert_eq!(as_written(&index), None, "someone else's version");

            // The watch may show only the edit, never the version written.
            let (index, mut writer) = secrets();
            note_written(&index, "uid-1", "10");
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "11")));
            assert_eq!(as_written(&index), None);
        }

        #[test]
        fn a_note_waits_for_its_own_version_and_object() {
            let (index, mut writer) = secrets();
            // Created at 10 and replaced at 12 before the watch showed either.
            note_written(&index, "uid-1", "10");
            note_written(&index, "uid-1", "12");
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "10")));
            assert_eq!(as_written(&index), None, "10 is no longer the last write");
            watch(&mut writer, watcher::Event::Apply(shown("uid-2", "12")));
            assert_eq!(as_written(&index), None, "another object at that version");
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "12")));
            assert_eq!(as_written(&index), Some(true));
        }

        #[test]
        fn a_write_deleted_before_the_watch_showed_it_leaves_no_note() {
            let (index, mut writer) = secrets();
            note_written(&index, "uid-2", "20");
            watch(&mut writer, watcher::Event::Delete(shown("uid-1", "15")));
            assert_eq!(notes(&index), 1, "the deletion of an older object");
            watch(&mut writer, watcher::Event::Delete(shown("uid-2", "21")));
            assert_eq!(notes(&index), 0);

            // A relist that no longer shows an object tells its deletion without its uid.
            note_written(&index, "uid-3", "30");
            let stand_in = SecretSummary::of(&written("uid-3", "30")).stand_in("team", NAME);
            watch(&mut writer, watcher::Event::Delete(stand_in));
            assert_eq!(notes(&index), 0);
        }

        #[test]
        fn a_relist_neither_loses_nor_misapplies_a_note() {
            // Noted before the relist, which shows the version written.
            let (index, mut writer) = secrets();
            note_written(&index, "uid-1", "10");
            watch(&mut writer, watcher::Event::Init);
            watch(&mut writer, watcher::Event::InitApply(shown("uid-1", "10")));
            watch(&mut writer, watcher::Event::InitDone);
            assert_eq!(as_written(&index), Some(true));

            // Noted while the relist runs, of the version it has just shown.
            let (index, mut writer) = secrets();
            watch(&mut writer, watcher::Event::Init);
            watch(&mut writer, watcher::Event::InitApply(shown("uid-1", "10")));
            note_written(&index, "uid-1", "10");
            watch(&mut writer, watcher::Event::InitDone);
            assert_eq!(as_written(&index), Some(true));
            assert_eq!(notes(&index), 0);

            // Written while the relist runs, after the list showed an edit made meanwhile.
            let (index, mut writer) = secrets();
            note_written(&index, "uid-1", "10");
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "10")));
            watch(&mut writer, watcher::Event::Init);
            watch(&mut writer, watcher::Event::InitApply(shown("uid-1", "11")));
            note_written(&index, "uid-1", "12");
            watch(&mut writer, watcher::Event::InitDone);
            assert_eq!(as_written(&index), None, "the edit is read");
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "12")));
            assert_eq!(as_written(&index), Some(true));

            // Noted for an object the relist no longer shows: kept, and no other object takes it.
            let (index, mut writer) = secrets();
            note_written(&index, "uid-1", "10");
            watch(&mut writer, watcher::Event::Init);
            watch(&mut writer, watcher::Event::InitDone);
            assert_eq!(index.get("team", NAME), None);
            watch(&mut writer, watcher::Event::Apply(shown("uid-2", "14")));
            assert_eq!(as_written(&index), None);
        }

        #[test]
        fn a_deleted_secret_is_absent_until_the_watch_shows_another_of_its_name() {
            let (index, mut writer) = secrets();
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "10")));
            index.note_deleted("team", NAME, Some("uid-1"));
            assert!(index.deleted_lately("team", NAME));
            assert!(!index.deleted_lately("team", "other"));
            assert!(!index.deleted_lately("elsewhere", NAME));
            // The deleted object's last change, and its deletion, come after.
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "11")));
            assert!(
                index.deleted_lately("team", NAME),
                "the deleted object's late change"
            );
            watch(&mut writer, watcher::Event::Delete(shown("uid-1", "11")));
            assert!(index.deleted_lately("team", NAME), "confirmed");
            watch(&mut writer, watcher::Event::Init);
            watch(&mut writer, watcher::Event::InitDone);
            assert!(
                index.deleted_lately("team", NAME),
                "a relist showing nothing keeps it"
            );
            watch(&mut writer, watcher::Event::Apply(shown("uid-2", "20")));
            assert!(
                !index.deleted_lately("team", NAME),
                "another Secret of that name"
            );
        }

        #[test]
        fn a_deletion_that_found_nothing_gives_way_to_any_secret_shown() {
            let (index, mut writer) = secrets();
            index.note_deleted("team", NAME, None);
            assert!(index.deleted_lately("team", NAME));
            watch(&mut writer, watcher::Event::Init);
            watch(&mut writer, watcher::Event::InitApply(shown("uid-1", "10")));
            assert!(!index.deleted_lately("team", NAME));

            // A reconcile found a Secret it does not own there.
            index.note_deleted("team", NAME, None);
            index.forget_note("team", NAME);
            assert!(!index.deleted_lately("team", NAME));
        }

        #[test]
        fn a_write_after_a_deletion_ends_it() {
            let (index, mut writer) = secrets();
            index.note_deleted("team", NAME, Some("uid-1"));
            note_written(&index, "uid-2", "20");
            assert!(!index.deleted_lately("team", NAME));
            watch(&mut writer, watcher::Event::Apply(shown("uid-2", "20")));
            assert_eq!(as_written(&index), Some(true));
        }

        #[test]
        fn a_late_note_never_overrides_what_came_after_it() {
            // Noted in the other order than the API server answered: written, then deleted.
            let (index, mut writer) = secrets();
            index.note_deleted("team", NAME, Some("uid-1"));
            note_written(&index, "uid-1", "10");
            assert!(index.deleted_lately("team", NAME));
            watch(&mut writer, watcher::Event::Apply(shown("uid-1", "10")));
            assert!(index.deleted_lately("team", NAME));

            // Deleted, then another written in its place.
            let (index, mut writer) = secrets();
            note_written(&index, "uid-2", "20");
            index.note_deleted("team", NAME, Some("uid-1"));
            assert!(
                !index.deleted_lately("team", NAME),
                "the watch tells which came last"
            );
            watch(&mut writer, watcher::Event::Apply(shown("uid-2", "20")));
            assert_eq!(as_written(&index), Some(true));

            // Written, then deleted: the deletion is the news.
            let (index, _writer) = secrets();
            note_written(&index, "uid-1", "10");
            index.note_deleted("team", NAME, Some("uid-1"));
            assert!(index.deleted_lately("team", NAME));
        }

        #[tokio::test(start_paused = true)]
        async fn a_deletion_answers_for_the_secrets_absence_for_five_minutes() {
            let (index, _writer) = secrets();
            index.note_deleted("team", NAME, Some("uid-1"));
            tokio::time::advance(Duration::from_secs(299)).await;
            assert!(index.deleted_lately("team", NAME));
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(!index.deleted_lately("team", NAME), "read again");
        }

        #[tokio::test(start_paused = true)]
        async fn notes_are_bounded_dropping_the_expired_then_the_oldest() {
            let (index, _writer) = secrets();
            index.note_deleted("team", "first", None);
            tokio::time::advance(Duration::from_secs(1)).await;
            for n in 1..MAX_NOTES {
                index.note_deleted("team", &format!("secret-{n}"), None);
            }
            assert_eq!(notes(&index), MAX_NOTES);
            index.note_deleted("team", "secret-1", None);
            assert_eq!(notes(&index), MAX_NOTES, "noted again in place");
            index.note_deleted("team", "one-more", None);
            assert_eq!(notes(&index), MAX_NOTES);
            assert!(!index.deleted_lately("team", "first"), "the oldest went");
            assert!(index.deleted_lately("team", "one-more"));

            tokio::time::advance(NOTES_KEPT_FOR).await;
            index.note_deleted("team", "later", None);
            assert_eq!(notes(&index), 1, "the expired went");
        }
    }
}
