//! What a watch delivers: the per-kind stream of [`ObjectEvent`]s both adapters produce.
//!
//! A leaf module: the index, the trimming of [`crate::shape`] and both adapters import it, and it
//! imports none of them.

/// A change to the set of objects of one kind.
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectEvent<K> {
    /// An object was created or changed: replace it in the index.
    Apply(K),
    /// An object was deleted: remove it from the index.
    Delete(K),
    /// The complete current set of objects (after the initial list and after any re-list): replace
    /// the whole index with it. The first `Resync` of a stream means "synced".
    Resync(Vec<K>),
}

impl<K> ObjectEvent<K> {
    /// The event's name as used in the `event` metric label and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ObjectEvent::Apply(_) => "apply",
            ObjectEvent::Delete(_) => "delete",
            ObjectEvent::Resync(_) => "resync",
        }
    }
}
