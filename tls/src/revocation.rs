//! The revoked serials and the open connections by client serial.
//!
//! Two orders make revocation race-free without holding one lock across both structures:
//! [`RevokedSerials::revoke`] first adds to the set and then closes the registered connections, while a
//! connection first registers ([`RevokedSerials::track`]) and then looks at the set. Whichever comes
//! second sees the other's write: either `revoke` finds the registration, or the registration finds
//! the serial. A certificate revoked between its handshake and its registration is thus still cut.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prism_domain::certificate::Serial;
use tokio::sync::Notify;

/// The revoked client-certificate serials, shared by every verifier and server that must honour
/// them, and the registry of open connections by client serial.
///
/// The set is keyed by the serial's octets (the DER integer's magnitude, as [`Serial::as_bytes`]), so
/// the handshake path looks a certificate up from its borrowed DER bytes under a read lock, without
/// allocating. It only grows: a revoked certificate stays revoked until it expires, and an expired one
/// is refused by WebPKI anyway, so a caller may rebuild the set from its log at start-up.
#[derive(Default)]
pub struct RevokedSerials {
    revoked: RwLock<HashSet<Box<[u8]>>>,
    live: Mutex<HashMap<Serial, HashMap<u64, Arc<Notify>>>>,
    next_id: AtomicU64,
}

impl fmt::Debug for RevokedSerials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokedSerials")
            .field("revoked", &self.len())
            .field("live_connections", &self.live_connections())
            .finish()
    }
}

impl RevokedSerials {
    /// An empty set, to be shared.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A set holding `serials` (the revocations already in the log at start-up).
    pub fn with<I: IntoIterator<Item = Serial>>(serials: I) -> Arc<Self> {
        let set = Self::default();
        set.write().extend(serials.into_iter().map(|serial| key(&serial)));
        Arc::new(set)
    }

    /// Revokes `serials`: handshakes presenting one of them are refused from now on, and every open
    /// connection made with one of them is closed (its serving future is dropped, which closes the
    /// socket and every HTTP/2 stream on it). Returns how many connections were closed.
    pub fn revoke<I: IntoIterator<Item = Serial>>(&self, serials: I) -> usize {
        let serials: Vec<Serial> = serials.into_iter().collect();
        // The set first, the registry second: see the module's comment.
        self.write().extend(serials.iter().map(key));
        let mut closed = 0;
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        for serial in &serials {
            // Removing the entries here means the connections' own unregistering finds nothing,
            // which is fine: they are gone either way.
            if let Some(connections) = live.remove(serial) {
                for notify in connections.values() {
                    // `notify_one` keeps a permit when nobody waits yet, so a connection that is
                    // between polls still sees it.
                    notify.notify_one();
                }
                closed += connections.len();
            }
        }
        closed
    }

    /// Whether `serial` is revoked.
    pub fn is_revoked(&self, serial: &Serial) -> bool {
        self.is_revoked_bytes(serial.as_bytes())
    }

    /// Whether the serial with these big-endian octets (leading zero octets allowed, as in DER) is
    /// revoked. This is the handshake's check: no allocation, one read lock.
    pub fn is_revoked_bytes(&self, serial: &[u8]) -> bool {
        let first = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
        self.revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&serial[first..])
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.revoked.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no serial is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many open connections are registered (made with a client certificate and not yet ended).
    pub fn live_connections(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(HashMap::len)
            .sum()
    }

    /// Registers a connection made with the certificate `serial`, for as long as the returned
    /// [`Tracked`] lives; [`Tracked::revoked`] resolves when the serial is revoked — at once if it
    /// already is. [`Server`](crate::Server) does this for every connection; it is public for servers
    /// that run their own accept loop.
    pub fn track(self: &Arc<Self>, serial: Serial) -> Tracked {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(serial.clone())
            .or_default()
            .insert(id, Arc::clone(&notify));
        // The registry first, the set second: see the module's comment.
        if self.is_revoked(&serial) {
            notify.notify_one();
        }
        Tracked {
            set: Arc::clone(self),
            serial,
            id,
            notify,
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<Box<[u8]>>> {
        self.revoked.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn untrack(&self, serial: &Serial, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(connections) = live.get_mut(serial) {
            connections.remove(&id);
            if connections.is_empty() {
                live.remove(serial);
            }
        }
    }
}

fn key(serial: &Serial) -> Box<[u8]> {
    serial.as_bytes().into()
}

/// One open connection's registration in [`RevokedSerials`]; dropping it unregisters the connection.
pub struct Tracked {
    set: Arc<RevokedSerials>,
    serial: Serial,
    id: u64,
    notify: Arc<Notify>,
}

impl fmt::Debug for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("serial", &self.serial)
            .field("id", &self.id)
            .finish()
    }
}

impl Tracked {
    /// The connection's client certificate serial.
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// Whether the serial is revoked now.
    pub fn is_revoked(&self) -> bool {
        self.set.is_revoked(&self.serial)
    }

    /// Resolves once the serial is revoked; the connection must then be closed.
    pub async fn revoked(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.set.untrack(&self.serial, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(byte: u8) -> Serial {
        Serial::from_bytes(&[byte, 0x42]).unwrap()
    }

    #[test]
    fn lookup_ignores_leading_zero_octets_of_der() {
        let set = RevokedSerials::with([serial(0x01)]);
        assert!(set.is_revoked(&serial(0x01)));
        assert!(set.is_revoked_bytes(&[0x00, 0x01, 0x42]));
        assert!(!set.is_revoked_bytes(&[0x02, 0x42]));
        assert!(!set.is_revoked_bytes(&[]));
    }

    #[tokio::test]
    async fn revoking_wakes_the_tracked_connections_of_that_serial_only() {
        let set = RevokedSerials::new();
        let one = set.track(serial(1));
        let other = set.track(serial(2));
        assert_eq!(set.live_connections(), 2);
        assert_eq!(set.revoke([serial(1)]), 1);
        tokio::time::timeout(std::time::Duration::from_secs(1), one.revoked())
            .await
            .expect("the revoked connection is told");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), other.revoked())
                .await
                .is_err()
        );
        drop(one);
        drop(other);
        assert_eq!(set.live_connections(), 0);
    }

    #[tokio::test]
    async fn a_connection_registered_after_revocation_is_told_at_once() {
        let set = RevokedSerials::with([serial(3)]);
        let late = set.track(serial(3));
        tokio::time::timeout(std::time::Duration::from_secs(1), late.revoked())
            .await
            .expect("told at once");
        drop(late);
        assert_eq!(set.live_connections(), 0);
    }
}
