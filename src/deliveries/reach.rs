//! Telling every node what audiences that follow enrollment changed, once
//! the change has committed: new deliveries reach the students' open
//! sessions, retracted ones leave them, and publishers' figures move.

use std::collections::{BTreeMap, BTreeSet};

use super::store::Reach;
use crate::events::{Event, EventBus};
use crate::ids::{AnnouncementId, UserId};

/// Runs of consecutive user ids one announcement's new deliveries are told
/// in, at most; past that one range covers them all (the hub then also
/// re-sends the item to connected users in the range who had it already,
/// which the inbox merges).
const MAX_RUNS: usize = 64;

/// Publishes what `deliver_due` brought.
pub fn reached(bus: &EventBus, reached: &[Reach]) {
    let mut by_announcement: BTreeMap<AnnouncementId, Vec<UserId>> = BTreeMap::new();
    for reach in reached {
        by_announcement
            .entry(reach.announcement_id)
            .or_default()
            .push(reach.user_id);
    }
    for (announcement_id, mut users) in by_announcement {
        users.sort_unstable();
        let mut runs = runs(&users);
        if runs.len() > MAX_RUNS {
            let count = runs.iter().map(|(_, _, n)| n).sum();
            runs = vec![(users[0], users[users.len() - 1], count)];
        }
        for (first_user_id, last_user_id, count) in runs {
            bus.publish(Event::DeliveriesCreated {
                announcement_id,
                first_user_id,
                last_user_id,
                count,
                // Others in the range may have had theirs for long.
                whole_range: false,
            });
        }
        bus.publish(Event::AnnouncementStats { announcement_id });
    }
}

/// Publishes what `retract_left` took back.
pub fn retracted(bus: &EventBus, retracted: &[Reach]) {
    let mut announcements = BTreeSet::new();
    for reach in retracted {
        bus.publish(Event::DeliveryRetracted {
            user_id: reach.user_id,
            announcement_id: reach.announcement_id,
        });
        announcements.insert(reach.announcement_id);
    }
    for announcement_id in announcements {
        bus.publish(Event::AnnouncementStats { announcement_id });
    }
}

/// Sorted ids as runs of consecutive ones: (first, last, how many).
fn runs(users: &[UserId]) -> Vec<(UserId, UserId, i64)> {
    let mut runs: Vec<(UserId, UserId, i64)> = Vec::new();
    for &user in users {
        match runs.last_mut() {
            Some((_, last, count)) if last.0 + 1 == user.0 => {
                *last = user;
                *count += 1;
            }
            _ => runs.push((user, user, 1)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_make_one_run() {
        let ids: Vec<UserId> = [3, 4, 5, 9, 11, 12].into_iter().map(UserId).collect();
        assert_eq!(
            runs(&ids),
            vec![
                (UserId(3), UserId(5), 3),
                (UserId(9), UserId(9), 1),
                (UserId(11), UserId(12), 2)
            ]
        );
    }
}
