//! The unread badges of the users connected here: what the hub knows of
//! each count, and which must be read again.
//!
//! Counting a user's unread deliveries joins every one of them to its
//! announcement; done after every acknowledgment it was the hub's heaviest
//! query (about 25 ms for 300 busy users, every 100 ms, beside the writer's
//! own batch). An acknowledgment that took a delivery off the count says so
//! in its event, so a count the hub read lately is moved by one instead.
//! Anything else that changes a count (new deliveries, withdrawals,
//! retractions, an event from a node that does not say) has it read again.
//!
//! A known count is trusted for `TRUSTED_FOR` after its read and forgotten
//! whenever events may have been missed (the hub lagged, the bridge was
//! down), so a count that drifted is put right within that time. A read
//! that was in flight when a delta arrived may or may not include it, so
//! the user is read again after it; of two reads in flight, only the later
//! one's figure is kept.
//!
//! While a fan-out's new items are still being pushed here, badges wait
//! (at most `BURST_HOLD`): a badge is a second frame to every recipient,
//! and sent between the chunks of one announcement it would be written,
//! and read by the client, before the items of the chunks still to come.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use metrics::counter;

use crate::ids::UserId;

/// How long a count read from the database is moved by deltas before it is
/// read again.
const TRUSTED_FOR: Duration = Duration::from_secs(30);

/// The longest badges wait behind a fan-out's new items (see the module's
/// doc): a long fan-out still moves them on this often.
const BURST_HOLD: Duration = Duration::from_millis(500);

struct Known {
    unread: i64,
    read_at: Instant,
}

/// The hub's badges: see the module's doc.
#[derive(Default)]
pub(super) struct Badges {
    /// Users whose count is to be read again.
    dirty: HashSet<UserId>,
    /// Users whose known count moved and is to be sent.
    moved: HashSet<UserId>,
    known: HashMap<UserId, Known>,
    /// The latest read issued for each user with one in flight.
    reading: HashMap<UserId, u64>,
    reads: u64,
    /// When a fan-out chunk's new items were last pushed here.
    created_at: Option<Instant>,
    /// Since when waiting badges have been held behind a fan-out.
    held_since: Option<Instant>,
}

/// What one flush does: read these users' counts, and send these known ones.
pub(super) struct Flush {
    pub read: Vec<UserId>,
    /// Which read this is, for `read_back`.
    pub generation: u64,
    pub send: Vec<(UserId, i64)>,
}

impl Badges {
    /// `user`'s count may have changed in a way only a read can tell.
    pub fn changed(&mut self, user: UserId) {
        self.dirty.insert(user);
    }

    /// `user`'s count moved by `delta` (an acknowledgment took a delivery
    /// off it): applied to a trusted known count, else the count is read.
    pub fn moved_by(&mut self, user: UserId, delta: i64) {
        if self.reading.contains_key(&user) {
            self.dirty.insert(user);
            return;
        }
        match self.known.get_mut(&user) {
            Some(known) if known.read_at.elapsed() < TRUSTED_FOR => {
                known.unread = (known.unread + delta).max(0);
                self.moved.insert(user);
                counter!("classbell_ws_badges_moved_total").increment(1);
            }
            _ => {
                self.dirty.insert(user);
            }
        }
    }

    /// A fan-out chunk's new items were pushed here at `now`.
    pub fn created(&mut self, now: Instant) {
        self.created_at = Some(now);
    }

    /// Whether the flush due at `now` waits: new items were pushed within
    /// the last `quiet` (more of the same fan-out may follow) and badges
    /// have not yet waited `BURST_HOLD`.
    pub fn hold(&mut self, now: Instant, quiet: Duration) -> bool {
        let pending = !self.dirty.is_empty() || !self.moved.is_empty();
        let busy = self
            .created_at
            .is_some_and(|at| now.saturating_duration_since(at) < quiet);
        if !(pending && busy) {
            self.held_since = None;
            return false;
        }
        let since = *self.held_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= BURST_HOLD {
            self.held_since = None;
            return false;
        }
        true
    }

    /// Events may have been missed: no count is trusted until read again.
    pub fn forget_all(&mut self) {
        self.known.clear();
    }

    /// `user` has no session here any more.
    pub fn forget(&mut self, user: UserId) {
        self.known.remove(&user);
        self.dirty.remove(&user);
        self.moved.remove(&user);
    }

    /// What to read and send now, for the users `connected` says are here.
    pub fn flush(&mut self, connected: impl Fn(&UserId) -> bool) -> Flush {
        let read: Vec<UserId> = self.dirty.drain().filter(|user| connected(user)).collect();
        self.reads += 1;
        for user in &read {
            self.reading.insert(*user, self.reads);
        }
        let send = self
            .moved
            .drain()
            .filter(|user| !self.reading.contains_key(user))
            .filter_map(|user| self.known.get(&user).map(|known| (user, known.unread)))
            .collect();
        Flush {
            read,
            generation: self.reads,
            send,
        }
    }

    /// Read `generation` came back with `counts` for its `users` (a user
    /// absent has none unread): the counts to send, those of users no later
    /// read has been issued for.
    pub fn read_back(
        &mut self,
        generation: u64,
        users: Vec<UserId>,
        counts: &HashMap<UserId, i64>,
        connected: impl Fn(&UserId) -> bool,
    ) -> Vec<(UserId, i64)> {
        let now = Instant::now();
        let mut send = Vec::with_capacity(users.len());
        for user in users {
            if self.reading.get(&user) != Some(&generation) {
                continue;
            }
            self.reading.remove(&user);
            if !connected(&user) {
                continue;
            }
            let unread = counts.get(&user).copied().unwrap_or(0);
            self.known.insert(
                user,
                Known {
                    unread,
                    read_at: now,
                },
            );
            send.push((user, unread));
        }
        send
    }

    /// A read failed: its users are read again at the next flush.
    pub fn read_failed(&mut self, generation: u64, users: &[UserId]) {
        for user in users {
            if self.reading.get(user) == Some(&generation) {
                self.reading.remove(user);
                self.dirty.insert(*user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: UserId = UserId(7);
    const BEN: UserId = UserId(8);

    fn here(_: &UserId) -> bool {
        true
    }

    fn counts(pairs: &[(UserId, i64)]) -> HashMap<UserId, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn an_unknown_count_is_read_and_then_moved_without_a_read() {
        let mut badges = Badges::default();
        badges.moved_by(ANN, -1);
        let flush = badges.flush(here);
        assert_eq!(flush.read, vec![ANN]);
        assert!(flush.send.is_empty());
        let sent = badges.read_back(flush.generation, flush.read, &counts(&[(ANN, 5)]), here);
        assert_eq!(sent, vec![(ANN, 5)]);

        badges.moved_by(ANN, -1);
        badges.moved_by(ANN, -1);
        let flush = badges.flush(here);
        assert!(flush.read.is_empty(), "a known count needs no read");
        assert_eq!(flush.send, vec![(ANN, 3)]);
    }

    #[test]
    fn a_delta_during_a_read_has_the_user_read_again() {
        let mut badges = Badges::default();
        badges.changed(ANN);
        let first = badges.flush(here);
        badges.moved_by(ANN, -1);
        let sent = badges.read_back(first.generation, first.read, &counts(&[(ANN, 4)]), here);
        assert_eq!(sent, vec![(ANN, 4)]);
        let again = badges.flush(here);
        assert_eq!(again.read, vec![ANN], "the read may have missed the delta");
    }

    #[test]
    fn only_the_latest_read_of_a_user_is_kept() {
        let mut badges = Badges::default();
        badges.changed(ANN);
        let older = badges.flush(here);
        badges.changed(ANN);
        let newer = badges.flush(here);
        let sent = badges.read_back(newer.generation, newer.read, &counts(&[(ANN, 2)]), here);
        assert_eq!(sent, vec![(ANN, 2)]);
        let stale = badges.read_back(older.generation, older.read, &counts(&[(ANN, 3)]), here);
        assert!(stale.is_empty(), "an older read landing late is dropped");
        badges.moved_by(ANN, -1);
        assert_eq!(badges.flush(here).send, vec![(ANN, 1)]);
    }

    #[test]
    fn forgotten_counts_and_absent_users_are_read_again_or_dropped() {
        let mut badges = Badges::default();
        badges.changed(ANN);
        badges.changed(BEN);
        let flush = badges.flush(|user| *user == ANN);
        assert_eq!(flush.read, vec![ANN], "only users still here are read");
        badges.read_back(flush.generation, flush.read, &counts(&[]), here);
        badges.forget_all();
        badges.moved_by(ANN, -1);
        let flush = badges.flush(here);
        assert_eq!(flush.read, vec![ANN]);
        badges.read_failed(flush.generation, &flush.read);
        assert_eq!(
            badges.flush(here).read,
            vec![ANN],
            "a failed read is retried"
        );
    }

    #[test]
    fn badges_wait_behind_a_fan_out_but_not_for_long() {
        let quiet = Duration::from_millis(100);
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut badges = Badges::default();
        badges.changed(ANN);
        assert!(!badges.hold(at(0), quiet), "no fan-out: no wait");

        badges.created(at(0));
        assert!(badges.hold(at(50), quiet), "more of the fan-out may follow");
        assert!(!badges.hold(at(150), quiet), "the fan-out went quiet");

        // A fan-out that keeps going holds badges back at most BURST_HOLD.
        let mut released = None;
        for ms in (200..2_000).step_by(100) {
            badges.created(at(ms));
            if !badges.hold(at(ms + 10), quiet) {
                released = Some(ms + 10);
                break;
            }
        }
        assert_eq!(released, Some(710), "held from 210 ms for BURST_HOLD");
        assert!(badges.hold(at(760), quiet), "and the next wait starts over");

        let _ = badges.flush(here);
        badges.created(at(800));
        assert!(
            !badges.hold(at(810), quiet),
            "nothing waiting: nothing held"
        );
    }

    #[test]
    fn a_count_never_goes_below_zero() {
        let mut badges = Badges::default();
        badges.changed(ANN);
        let flush = badges.flush(here);
        badges.read_back(flush.generation, flush.read, &counts(&[(ANN, 1)]), here);
        badges.moved_by(ANN, -1);
        badges.moved_by(ANN, -1);
        assert_eq!(badges.flush(here).send, vec![(ANN, 0)]);
    }
}
