//! The object store: JSON objects keyed by resource, namespace and name, one global
//! resourceVersion counter, and the event history that watches replay from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::status::ApiError;

/// How many watch events are kept for `watch?resourceVersion=N` replays.
const HISTORY: usize = 20_000;
/// Capacity of the live event channel (a watcher lagging more than this is closed).
const LIVE: usize = 8_192;

/// Type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

/// One change of the store.
#[derive(Debug)]
pub struct WatchEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Store id of the resource.
    pub resource: &'static str,
    /// Namespace (empty for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (the last state for deletions).
    pub object: Arc<Value>,
    /// The object before the change (modifications only).
    pub prev: Option<Arc<Value>>,
}

struct Entry {
    seq: u64,
    obj: Arc<Value>,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    seq: u64,
    objects: HashMap<&'static str, BTreeMap<(String, String), Entry>>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Watches from a resourceVersion below this are too old.
    floor: u64,
    pending: Vec<Arc<WatchEvent>>,
}

/// The store shared by all handlers.
pub struct Store {
    inner: Mutex<Inner>,
    /// One live channel per resource: a change wakes only the watches of its own resource (a
    /// change to an Event never wakes the kubelets' pod watches).
    live: Mutex<HashMap<&'static str, broadcast::Sender<Arc<WatchEvent>>>>,
    history: usize,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// Synthetic ADDED events for the current objects, then live.
    Current,
    /// Every change after this resourceVersion.
    Rv(u64),
}

/// A started watch: events to replay, then the live channel.
pub struct Subscription {
    /// Events to send first, in order.
    pub backlog: Vec<Arc<WatchEvent>>,
    /// Live events (may repeat backlog rvs; skip rv <= `after`).
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
    /// resourceVersion after which live events are new.
    pub after: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self::with_history(HISTORY)
    }
}

impl Store {
    /// A store keeping `history` changes for watch replays.
    pub fn with_history(history: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            live: Mutex::new(HashMap::new()),
            history: history.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` atomically; its changes become watch events in resourceVersion order.
    pub fn transact<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        self.transact_with(false, f)
    }

    /// Like [`Self::transact`]; with `dry_run`, writes are computed and returned but not applied.
    pub fn transact_with<R>(&self, dry_run: bool, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let out = f(&mut Txn { inner, dry_run });
        for ev in std::mem::take(&mut inner.pending) {
            if inner.history.len() >= self.history
                && let Some(old) = inner.history.pop_front()
            {
                inner.floor = old.rv;
            }
            inner.history.push_back(Arc::clone(&ev));
            let live = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(tx) = live.get(ev.resource) {
                // No receivers is fine.
                let _ = tx.send(ev);
            }
        }
        out
    }

    /// Starts a watch of `resource`.
    pub fn subscribe(&self, resource: &'static str, since: Since) -> Result<Subscription, ApiError> {
        let inner = self.lock();
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(resource)
            .or_insert_with(|| broadcast::channel(LIVE).0)
            .subscribe();
        // A watch from a future resourceVersion starts after it.
        let after = match since {
            Since::Rv(n) => inner.rv.max(n),
            Since::Current => inner.rv,
        };
        let backlog = match since {
            Since::Current => {
                let mut items: Vec<&Entry> = inner
                    .objects
                    .get(resource)
                    .map(|m| m.values().collect())
                    .unwrap_or_default();
                items.sort_by_key(|e| e.seq);
                items
                    .into_iter()
                    .map(|e| {
                        Arc::new(WatchEvent {
                            rv: rv_of(&e.obj),
                            resource,
                            namespace: ns_of(&e.obj),
                            kind: EventType::Added,
                            object: Arc::clone(&e.obj),
                            prev: None,
                        })
                    })
                    .collect()
            }
            Since::Rv(n) => {
                if n < inner.floor {
                    return Err(ApiError::Expired(format!(
                        "too old resource version: {n} ({})",
                        inner.floor + 1
                    )));
                }
                // The history is in resourceVersion order: skip to the first change after `n`.
                let first = inner.history.partition_point(|e| e.rv <= n);
                inner
                    .history
                    .range(first..)
                    .filter(|e| e.resource == resource)
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription { backlog, live, after })
    }

    /// Current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.lock().rv
    }
}

fn rv_of(obj: &Value) -> u64 {
    obj.get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn ns_of(obj: &Value) -> String {
    obj.get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// An open transaction on the store.
pub struct Txn<'a> {
    inner: &'a mut Inner,
    dry_run: bool,
}

impl Txn<'_> {
    /// Current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.inner.rv
    }

    /// One object.
    pub fn get(&self, resource: &'static str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.inner
            .objects
            .get(resource)?
            .get(&(ns.to_owned(), name.to_owned()))
            .map(|e| Arc::clone(&e.obj))
    }

    /// Objects of a resource (one namespace or all), in creation order.
    pub fn list(&self, resource: &'static str, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.list_where(resource, ns, |_| true)
    }

    /// [`Txn::list`] of the objects `keep` accepts (filtered before they are ordered).
    pub fn list_where(
        &self,
        resource: &'static str,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<Arc<Value>> {
        let Some(map) = self.inner.objects.get(resource) else {
            return Vec::new();
        };
        let mut items: Vec<&Entry> = match ns {
            Some(ns) => map
                .range((ns.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, e)| e)
                .filter(|e| keep(&e.obj))
                .collect(),
            None => map.values().filter(|e| keep(&e.obj)).collect(),
        };
        items.sort_by_key(|e| e.seq);
        items.into_iter().map(|e| Arc::clone(&e.obj)).collect()
    }

    fn bump(&mut self, obj: &mut Value) -> u64 {
        self.inner.rv += 1;
        let rv = self.inner.rv;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        rv
    }

    fn record(&mut self, ev: WatchEvent) {
        self.inner.pending.push(Arc::new(ev));
    }

    /// Inserts a new object; `None` if one with that name exists.
    pub fn create(&mut self, resource: &'static str, ns: &str, name: &str, mut obj: Value) -> Option<Arc<Value>> {
        let key = (ns.to_owned(), name.to_owned());
        if self.get(resource, ns, name).is_some() {
            return None;
        }
        if self.dry_run {
            return Some(Arc::new(obj));
        }
        let rv = self.bump(&mut obj);
        self.inner.seq += 1;
        let seq = self.inner.seq;
        let obj = Arc::new(obj);
        self.inner.objects.entry(resource).or_default().insert(
            key,
            Entry {
                seq,
                obj: Arc::clone(&obj),
            },
        );
        self.record(WatchEvent {
            rv,
            resource,
            namespace: ns.to_owned(),
            kind: EventType::Added,
            object: Arc::clone(&obj),
            prev: None,
        });
        Some(obj)
    }

    /// Replaces an existing object; `None` if it does not exist.
    pub fn update(&mut self, resource: &'static str, ns: &str, name: &str, mut obj: Value) -> Option<Arc<Value>> {
        let key = (ns.to_owned(), name.to_owned());
        self.get(resource, ns, name)?;
        if self.dry_run {
            return Some(Arc::new(obj));
        }
        let rv = self.bump(&mut obj);
        let obj = Arc::new(obj);
        let entry = self.inner.objects.get_mut(resource)?.get_mut(&key)?;
        let prev = std::mem::replace(&mut entry.obj, Arc::clone(&obj));
        self.record(WatchEvent {
            rv,
            resource,
            namespace: ns.to_owned(),
            kind: EventType::Modified,
            object: Arc::clone(&obj),
            prev: Some(prev),
        });
        Some(obj)
    }

    /// Removes an object; `last` (if given) is the final state reported in the DELETED event.
    pub fn delete(&mut self, resource: &'static str, ns: &str, name: &str, last: Option<Value>) -> Option<Arc<Value>> {
        let key = (ns.to_owned(), name.to_owned());
        if self.dry_run {
            let cur = self.inner.objects.get(resource)?.get(&key)?;
            return Some(Arc::new(last.unwrap_or_else(|| (*cur.obj).clone())));
        }
        let entry = self.inner.objects.get_mut(resource)?.remove(&key)?;
        let mut obj = last.unwrap_or_else(|| (*entry.obj).clone());
        let rv = self.bump(&mut obj);
        let obj = Arc::new(obj);
        self.record(WatchEvent {
            rv,
            resource,
            namespace: ns.to_owned(),
            kind: EventType::Deleted,
            object: Arc::clone(&obj),
            prev: Some(entry.obj),
        });
        Some(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}})
    }

    #[test]
    fn replay_and_expiry() {
        let store = Store::with_history(3);
        store.transact(|t| {
            for n in ["a", "b", "c", "d"] {
                t.create("pods", "ns", n, pod(n));
            }
        });
        // rv 1 was dropped from the history: replays from 0 are too old, from 1 are fine.
        assert!(matches!(
            store.subscribe("pods", Since::Rv(0)),
            Err(ApiError::Expired(_))
        ));
        let sub = store.subscribe("pods", Since::Rv(1)).unwrap();
        let rvs: Vec<u64> = sub.backlog.iter().map(|e| e.rv).collect();
        assert_eq!(rvs, [2, 3, 4]);
        let cur = store.subscribe("pods", Since::Current).unwrap();
        assert_eq!(cur.backlog.len(), 4);
        assert!(cur.backlog.iter().all(|e| e.kind == EventType::Added));
    }

    #[test]
    fn dry_run_changes_nothing() {
        let store = Store::default();
        store.transact_with(true, |t| t.create("pods", "ns", "a", pod("a")));
        assert_eq!(store.rv(), 0);
        assert!(store.transact(|t| t.get("pods", "ns", "a")).is_none());
        store.transact(|t| t.create("pods", "ns", "a", pod("a")));
        store.transact_with(true, |t| t.delete("pods", "ns", "a", None));
        assert!(store.transact(|t| t.get("pods", "ns", "a")).is_some());
        assert_eq!(store.rv(), 1);
    }
}
