//! Sign-in throttling, in memory: a few wrong passwords lock an account for a while, and many from one
//! network address lock that address, so that online guessing stays slow whether the attacker tries
//! many passwords on one account or one password on many accounts.
//!
//! In memory because the cost of losing it (a restart forgets the counts) is small next to the cost
//! of a write per failed sign-in to a shared store; each process throttles on its own, so with N
//! gateway processes an attacker gets at most N times the limits. The state is bounded: expired
//! entries are dropped, and at [`ThrottleConfig::max_entries`] the ones closest to expiry go first, so
//! a flood of made-up accounts or addresses cannot grow the process.
//!
//! Time is an argument ([`Instant`]), so tests run without sleeping.
//!
//! Use: [`SignInThrottle::check`] before verifying the password (and answer `429` with `Retry-After`
//! when it refuses), [`SignInThrottle::record_failure`] after a wrong password or an unknown account,
//! [`SignInThrottle::record_success`] after a right one. Concurrent attempts that all pass `check`
//! before any of them records its failure can exceed the limit by the number of such attempts.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// At most `max_failures` failed sign-ins within `window`; reaching it locks for `window` from the
/// failure that reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max_failures: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Per account: 5 failures in 15 minutes by default (guessing one account's password).
    pub per_account: Limit,
    /// Per network address (IPv6 by /64): 30 failures in a minute by default (trying one password on
    /// many accounts, or one account from behind a shared address faster than `per_account` allows
    /// for many accounts at once).
    pub per_address: Limit,
    /// The most accounts, and separately the most addresses, remembered at once.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            per_account: Limit {
                max_failures: 5,
                window: Duration::from_secs(15 * 60),
            },
            per_address: Limit {
                max_failures: 30,
                window: Duration::from_secs(60),
            },
            max_entries: 100_000,
        }
    }
}

/// What a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    Account,
    Address,
}

/// A sign-in refused before the password was looked at. `retry_after` is for the `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed sign-ins {}; try again in {} seconds", match scope {
    ThrottleScope::Account => "for this account",
    ThrottleScope::Address => "from this network address",
}, retry_after.as_secs().max(1))]
pub struct Throttled {
    pub retry_after: Duration,
    pub scope: ThrottleScope,
}

#[derive(Debug)]
pub struct SignInThrottle {
    config: ThrottleConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When expired entries are next dropped, so that memory is given back without waiting for the
    /// tables to fill.
    next_sweep: Option<Instant>,
    /// Keyed by the SHA-256 of the account name, so that a long made-up name costs no more memory than
    /// a short one (and the table holds no e-mail addresses).
    accounts: HashMap<[u8; 32], Entry>,
    addresses: HashMap<IpAddr, Entry>,
}

/// Shows sizes only: the keys are accounts and addresses.
impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("accounts", &self.accounts.len())
            .field("addresses", &self.addresses.len())
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Entry {
    fn expires_at(&self, limit: Limit) -> Instant {
        let window_end = self.window_start + limit.window;
        self.locked_until
            .map_or(window_end, |until| until.max(window_end))
    }

    fn refusal(&self, now: Instant, scope: ThrottleScope) -> Option<Throttled> {
        let until = self.locked_until?;
        (now < until).then(|| Throttled {
            retry_after: until - now,
            scope,
        })
    }
}

impl SignInThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    pub fn config(&self) -> ThrottleConfig {
        self.config
    }

    /// Whether a sign-in to `account` from `address` may be tried now. `account` should be the
    /// normalised e-mail address (or user id), the same string for every spelling of one account.
    /// When both the account and the address are locked, the longer wait is reported.
    pub fn check(&self, account: &str, address: IpAddr, now: Instant) -> Result<(), Throttled> {
        let state = self.lock();
        let by_account = state
            .accounts
            .get(&account_key(account))
            .and_then(|e| e.refusal(now, ThrottleScope::Account));
        let by_address = state
            .addresses
            .get(&address_key(address))
            .and_then(|e| e.refusal(now, ThrottleScope::Address));
        match (by_account, by_address) {
            (Some(a), Some(b)) => Err(if b.retry_after > a.retry_after { b } else { a }),
            (Some(refusal), None) | (None, Some(refusal)) => Err(refusal),
            (None, None) => Ok(()),
        }
    }

    /// Counts a failed sign-in (wrong password, or no such account) against both the account and the
    /// address.
    pub fn record_failure(&self, account: &str, address: IpAddr, now: Instant) {
        let max_entries = self.config.max_entries.max(1);
        let (account_limit, address_limit) = (self.config.per_account, self.config.per_address);
        let mut state = self.lock();
        if state.next_sweep.is_none_or(|at| now >= at) {
            state.accounts.retain(|_, e| e.expires_at(account_limit) > now);
            state.addresses.retain(|_, e| e.expires_at(address_limit) > now);
            state.next_sweep = Some(now + account_limit.window.min(address_limit.window));
        }
        record(
            &mut state.accounts,
            account_key(account),
            self.config.per_account,
            max_entries,
            now,
        );
        record(
            &mut state.addresses,
            address_key(address),
            self.config.per_address,
            max_entries,
            now,
        );
    }

    /// Forgets the account's failures after a successful sign-in. The address keeps its count: one
    /// right password does not vouch for the other attempts from there.
    pub fn record_success(&self, account: &str, _now: Instant) {
        self.lock().accounts.remove(&account_key(account));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain counters; one left half-updated by a panicking thread is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn record<K: Eq + Hash + Copy>(
    map: &mut HashMap<K, Entry>,
    key: K,
    limit: Limit,
    max_entries: usize,
    now: Instant,
) {
    if !map.contains_key(&key) && map.len() >= max_entries {
        make_room(map, limit, max_entries, now);
    }
    let entry = map.entry(key).or_insert(Entry {
        window_start: now,
        failures: 0,
        locked_until: None,
    });
    if now >= entry.expires_at(limit) {
        *entry = Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        };
    }
    entry.failures = entry.failures.saturating_add(1);
    if entry.failures >= limit.max_failures && entry.locked_until.is_none_or(|until| until <= now) {
        entry.locked_until = Some(now + limit.window);
    }
}

/// Drops expired entries; if that is not enough, the eighth of the entries that matter least, so that
/// the next `max_entries / 8` insertions need no scan. What matters least: not locked before locked,
/// then fewer failures, then sooner expiry. A flood of made-up accounts with one failure each thus
/// pushes out other made-up accounts, not the lock on the account it is meant to free.
fn make_room<K: Eq + Hash + Copy>(
    map: &mut HashMap<K, Entry>,
    limit: Limit,
    max_entries: usize,
    now: Instant,
) {
    map.retain(|_, e| e.expires_at(limit) > now);
    if map.len() < max_entries {
        return;
    }
    let mut by_worth: Vec<_> = map
        .iter()
        .map(|(k, e)| {
            (
                (
                    e.refusal(now, ThrottleScope::Account).is_some(),
                    e.failures,
                    e.expires_at(limit),
                ),
                *k,
            )
        })
        .collect();
    let evict = (max_entries / 8).max(1).min(by_worth.len());
    by_worth.select_nth_unstable_by_key(evict - 1, |(worth, _)| *worth);
    for (_, key) in &by_worth[..evict] {
        map.remove(key);
    }
}

fn account_key(account: &str) -> [u8; 32] {
    Sha256::digest(account.as_bytes()).into()
}

/// One key per attacker-sized unit: an IPv4 address, or an IPv6 /64 (the smallest network a host is
/// normally given, so a single machine can use every address in it). IPv4-mapped IPv6 addresses count
/// as the IPv4 address they carry.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_failures_lock_the_account_for_fifteen_minutes() {
        let throttle = SignInThrottle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        for i in 0..5 {
            let now = t0 + Duration::from_secs(i * 10);
            assert_eq!(throttle.check("ada@example.org", ip("192.0.2.1"), now), Ok(()));
            throttle.record_failure("ada@example.org", ip("192.0.2.1"), now);
        }
        let locked_at = t0 + Duration::from_secs(40);
        let refusal = throttle
            .check("ada@example.org", ip("198.51.100.7"), locked_at)
            .unwrap_err();
        assert_eq!(
            refusal,
            Throttled {
                retry_after: 15 * MINUTE,
                scope: ThrottleScope::Account
            }
        );
        assert_eq!(
            refusal.to_string(),
            "too many failed sign-ins for this account; try again in 900 seconds"
        );
        let later = locked_at + 10 * MINUTE;
        assert_eq!(
            throttle
                .check("ada@example.org", ip("192.0.2.1"), later)
                .unwrap_err()
                .retry_after,
            5 * MINUTE
        );
        // Other accounts are not affected.
        assert_eq!(throttle.check("bob@example.org", ip("192.0.2.1"), later), Ok(()));
        // The lock ends, and the count starts again.
        let after = locked_at + 15 * MINUTE;
        assert_eq!(throttle.check("ada@example.org", ip("192.0.2.1"), after), Ok(()));
        throttle.record_failure("ada@example.org", ip("192.0.2.1"), after);
        assert_eq!(throttle.check("ada@example.org", ip("192.0.2.1"), after), Ok(()));
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_lock() {
        let throttle = SignInThrottle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        for i in 0..20 {
            let now = t0 + i * 4 * MINUTE;
            assert_eq!(
                throttle.check("ada@example.org", ip("192.0.2.1"), now),
                Ok(()),
                "attempt {i}"
            );
            throttle.record_failure("ada@example.org", ip("192.0.2.1"), now);
        }
    }

    #[test]
    fn a_success_clears_the_account() {
        let throttle = SignInThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        for _ in 0..4 {
            throttle.record_failure("ada@example.org", ip("192.0.2.1"), now);
        }
        throttle.record_success("ada@example.org", now);
        for _ in 0..4 {
            throttle.record_failure("ada@example.org", ip("192.0.2.1"), now);
        }
        assert_eq!(throttle.check("ada@example.org", ip("192.0.2.1"), now), Ok(()));
        throttle.record_failure("ada@example.org", ip("192.0.2.1"), now);
        assert!(throttle.check("ada@example.org", ip("192.0.2.1"), now).is_err());
        // A success also lifts a lock (the caller checked first, so it only follows a race).
        throttle.record_success("ada@example.org", now);
        assert_eq!(throttle.check("ada@example.org", ip("192.0.2.1"), now), Ok(()));
    }

    #[test]
    fn many_accounts_from_one_address_lock_the_address() {
        let throttle = SignInThrottle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        for i in 0..30 {
            throttle.record_failure(&format!("user{i}@example.org"), ip("203.0.113.9"), t0);
        }
        let refusal = throttle
            .check("new@example.org", ip("203.0.113.9"), t0)
            .unwrap_err();
        assert_eq!(
            refusal,
            Throttled {
                retry_after: MINUTE,
                scope: ThrottleScope::Address
            }
        );
        assert_eq!(
            refusal.to_string(),
            "too many failed sign-ins from this network address; try again in 60 seconds"
        );
        assert_eq!(throttle.check("new@example.org", ip("203.0.113.10"), t0), Ok(()));
        assert_eq!(
            throttle.check("new@example.org", ip("203.0.113.9"), t0 + MINUTE),
            Ok(())
        );
        // A success does not clear the address.
        throttle.record_success("user0@example.org", t0);
        assert!(
            throttle
                .check("user0@example.org", ip("203.0.113.9"), t0)
                .is_err()
        );
    }

    #[test]
    fn ipv6_addresses_count_by_64_bit_prefix_and_mapped_ipv4_as_ipv4() {
        let throttle = SignInThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        for i in 0..30 {
            throttle.record_failure(&format!("u{i}"), ip(&format!("2001:db8:1:2::{i:x}")), now);
        }
        assert!(throttle.check("x", ip("2001:db8:1:2:ffff::1"), now).is_err());
        assert_eq!(throttle.check("x", ip("2001:db8:1:3::1"), now), Ok(()));

        for i in 0..30 {
            throttle.record_failure(&format!("v{i}"), ip("::ffff:192.0.2.44"), now);
        }
        assert!(throttle.check("x", ip("192.0.2.44"), now).is_err());
    }

    #[test]
    fn the_longer_wait_is_reported_when_both_are_locked() {
        let throttle = SignInThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        for i in 0..30 {
            let account = if i < 5 {
                "ada@example.org".to_owned()
            } else {
                format!("u{i}")
            };
            throttle.record_failure(&account, ip("192.0.2.1"), now);
        }
        let refusal = throttle
            .check("ada@example.org", ip("192.0.2.1"), now)
            .unwrap_err();
        assert_eq!(refusal.scope, ThrottleScope::Account);
        let refusal = throttle.check(
            "ada@example.org",
            ip("192.0.2.1"),
            now + 14 * MINUTE + Duration::from_secs(30),
        );
        assert_eq!(refusal.unwrap_err().retry_after, Duration::from_secs(30));
    }

    #[test]
    fn memory_stays_bounded() {
        let config = ThrottleConfig {
            max_entries: 100,
            ..ThrottleConfig::default()
        };
        let throttle = SignInThrottle::new(config);
        let t0 = Instant::now();
        // The victim is locked first, then a flood of made-up accounts from many addresses follows.
        for _ in 0..5 {
            throttle.record_failure("victim@example.org", ip("192.0.2.1"), t0);
        }
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            throttle.record_failure(&format!("{i}-{}", "x".repeat(1000)), address, now);
            let state = throttle.lock();
            assert!(
                state.accounts.len() <= 100 && state.addresses.len() <= 100,
                "{state:?}"
            );
        }
        // The flood pushed out made-up accounts, not the lock.
        assert!(
            throttle
                .check(
                    "victim@example.org",
                    ip("192.0.2.2"),
                    t0 + Duration::from_secs(10)
                )
                .is_err()
        );
        // Checks never add entries.
        for i in 0..1000 {
            let _ = throttle.check(&format!("check{i}"), ip("198.51.100.1"), t0);
        }
        assert!(throttle.lock().accounts.len() <= 100);

        // Expired entries go before live ones.
        let much_later = t0 + 16 * MINUTE;
        throttle.record_failure("late@example.org", ip("192.0.2.200"), much_later);
        let state = throttle.lock();
        assert_eq!(state.accounts.len(), 1, "{state:?}");
        assert_eq!(state.addresses.len(), 1, "{state:?}");
    }

    #[test]
    fn debug_output_names_no_account() {
        let throttle = SignInThrottle::new(ThrottleConfig::default());
        throttle.record_failure("ada@example.org", ip("192.0.2.1"), Instant::now());
        let shown = format!("{throttle:?}");
        assert!(!shown.contains("ada") && !shown.contains("192.0.2.1"), "{shown}");
    }
}
