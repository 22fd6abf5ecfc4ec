//! How many event streams each caller holds open on this replica, capped.
//!
//! A stream is counted against whoever opened it: an endpoint's token against its endpoint, an
//! admin token against its name (an admin watching an endpoint never takes that endpoint's
//! slots, so dashboards cannot lock an agent out of its own stream). The count is taken before
//! the WebSocket upgrade and held by a [`StreamSlot`] for the session's life; dropping it, however
//! the session ends (or if the upgrade never completes), gives the slot back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// Who holds a stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    /// An endpoint's own token.
    Endpoint(Uuid),
    /// An admin token, by name.
    Admin(String),
}

/// The open streams of this replica, per holder.
#[derive(Clone)]
pub struct StreamSlots {
    open: Arc<Mutex<HashMap<Holder, u32>>>,
    per_endpoint: u32,
    per_admin: u32,
}

impl StreamSlots {
    /// At most `per_endpoint` streams per endpoint and `per_admin` per admin name.
    pub fn new(per_endpoint: u32, per_admin: u32) -> Self {
        Self {
            open: Arc::default(),
            per_endpoint,
            per_admin,
        }
    }

    /// The most streams `holder` may have open.
    pub fn cap(&self, holder: &Holder) -> u32 {
        match holder {
            Holder::Endpoint(_) => self.per_endpoint,
            Holder::Admin(_) => self.per_admin,
        }
    }

    /// A slot for one more stream of `holder`, or `None` if it holds its cap already.
    pub fn take(&self, holder: Holder) -> Option<StreamSlot> {
        let cap = self.cap(&holder);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(holder.clone()).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: self.clone(),
            holder,
        })
    }
}

/// One open stream's place in its holder's count, given back on drop.
pub struct StreamSlot {
    slots: StreamSlots,
    holder: Holder,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.holder) {
            *count -= 1;
            // Forget holders with nothing open, so the map stays as small as the open streams.
            if *count == 0 {
                open.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_gets_its_cap_and_a_slot_back_when_one_closes() {
        let slots = StreamSlots::new(2, 1);
        let endpoint = Holder::Endpoint(Uuid::new_v4());
        let first = slots.take(endpoint.clone()).unwrap();
        let _second = slots.take(endpoint.clone()).unwrap();
        assert!(slots.take(endpoint.clone()).is_none());
        assert!(
            slots.take(Holder::Endpoint(Uuid::new_v4())).is_some(),
            "another endpoint is not affected"
        );
        drop(first);
        assert!(slots.take(endpoint).is_some());
        let admin = slots.take(Holder::Admin("ops".into())).unwrap();
        assert!(slots.take(Holder::Admin("ops".into())).is_none());
        drop(admin);
        assert!(
            slots
                .open
                .lock()
                .unwrap()
                .get(&Holder::Admin("ops".into()))
                .is_none()
        );
    }
}
