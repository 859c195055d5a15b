//! The mail queue as a pure state machine: intake exactly once, the
//! priority filter, coalescing (queued and within the window after a
//! send), backoff, the three outcomes and expiry.

use uuid::Uuid;

use super::*;
use crate::alerts::catalog;
use crate::alerts::settings::{COALESCE, DESTINATION, MAILHUB, RETRY, RETRY_MAX};
use crate::api::bootstrap::{HostInfo, new_pool};
use crate::db::Database;

fn at(s: i64) -> DateTime {
    DateTime::from_unix(1_700_000_000 + s)
}

struct World {
    db: Database,
    host: Ref,
    n: u128,
}

impl World {
    fn new() -> World {
        let mut db = Database::new();
        let info = HostInfo {
            uuid: "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e".into(),
            name_label: "h1".into(),
            address: "10.0.0.1".into(),
            hostname: "h1".into(),
            memory_total: 8 << 30,
            memory_overhead: 1 << 30,
            vm_drivers: vec![],
        };
        let caller = Caller {
            now: at(0),
            seed: Uuid::from_u128(1),
            this_host: Ref::NULL,
        };
        let (host, changes) = new_pool(&db, &caller, &info);
        let _ = db.apply(&changes).unwrap();
        World { db, host, n: 2 }
    }

    fn seed(&mut self) -> Uuid {
        self.n += 1;
        Uuid::from_u128(self.n)
    }

    fn apply(&mut self, changes: &[Change]) {
        let _ = self.db.apply(changes).expect("queue changes apply");
        self.db.check_invariants().unwrap();
    }

    fn raise(&mut self, alert: &catalog::Alert, now: DateTime) {
        let seed = self.seed();
        let c = catalog::raise(&self.db, now, seed, alert);
        self.apply(&[c]);
    }

    fn intake(&mut self, s: Option<&MailSettings>, now: DateTime) {
        let seed = self.seed();
        let c = enqueue(&self.db, s, now, seed);
        self.apply(&c);
    }

    fn record(&mut self, m: &Mail, d: &Delivery, s: &MailSettings, now: DateTime) {
        let seed = self.seed();
        let c = record(&self.db, m, d, s, now, seed);
        self.apply(&c);
    }
}

fn settings(coalesce: &str) -> MailSettings {
    MailSettings::from_pairs(
        &[
            (DESTINATION.into(), "ops@example.com".into()),
            (MAILHUB.into(), "mx:25".into()),
            (RETRY.into(), "10".into()),
            (RETRY_MAX.into(), "60".into()),
            (COALESCE.into(), coalesce.into()),
        ],
        "h1",
    )
    .unwrap()
}

#[test]
fn each_message_is_taken_in_once_and_the_filter_applies() {
    let mut w = World::new();
    let s = settings("0");
    let failed = catalog::host_failed(&w.db, w.host);
    let started = catalog::vm_shutdown(&w.db, Ref::NULL);
    w.raise(&failed, at(1));
    w.raise(&started, at(1)); // priority 5: not mailed
    w.intake(Some(&s), at(2));
    assert_eq!(mails(&w.db).len(), 1);
    let newest = w.db.objects(Class::Message).map(|(_, o)| o.created()).max();
    assert_eq!(Some(watermark(&w.db)), newest);
    // Nothing new: no changes at all (no commit, no event).
    assert!(enqueue(&w.db, Some(&s), at(3), Uuid::nil()).is_empty());
    // Without settings messages are passed over, never mailed later.
    w.raise(&failed, at(4));
    w.intake(None, at(4));
    w.intake(Some(&s), at(5));
    assert_eq!(mails(&w.db).len(), 1);
}

#[test]
fn identical_alerts_coalesce_while_queued_and_within_the_window() {
    let mut w = World::new();
    let s = settings("30");
    let failed = catalog::host_failed(&w.db, w.host);
    for i in 0..3 {
        w.raise(&failed, at(i));
    }
    w.raise(&catalog::statefile_lost(&w.db, w.host), at(2));
    w.intake(Some(&s), at(3));
    let q = due(&w.db, at(3));
    assert_eq!(q.len(), 2);
    assert_eq!((q[0].name.as_str(), q[0].count), ("HA_HOST_FAILED", 3));
    assert_eq!((q[0].first, q[0].last), (at(0), at(2)));
    // One more joins the queued mail (intake runs before the send).
    w.raise(&failed, at(4));
    w.intake(Some(&s), at(4));
    let q = due(&w.db, at(4));
    assert_eq!(q[0].count, 4);
    w.record(&q[0], &Delivery::Sent("250 ok".into()), &s, at(5));
    w.record(&q[1], &Delivery::Sent("250 ok".into()), &s, at(5));
    assert!(due(&w.db, at(5)).is_empty());
    // Within the window after the send: held until its end.
    w.raise(&failed, at(10));
    w.raise(&failed, at(11));
    w.intake(Some(&s), at(11));
    assert!(due(&w.db, at(11)).is_empty());
    assert_eq!(next_wakeup(&w.db, Some(&s)), Some(at(35)));
    let q = due(&w.db, at(35));
    assert_eq!((q.len(), q[0].count), (1, 2));
    // The window over: the sent mails expire, a new alert goes at once.
    w.apply(&expire(&w.db, Some(&s), at(35)));
    assert_eq!(mails(&w.db).len(), 1);
    w.record(&q[0], &Delivery::Sent("250 ok".into()), &s, at(36));
    w.apply(&expire(&w.db, Some(&s), at(66)));
    assert!(mails(&w.db).is_empty());
    w.raise(&failed, at(70));
    w.intake(Some(&s), at(70));
    assert_eq!(due(&w.db, at(70)).len(), 1);
}

#[test]
fn transient_failures_back_off_and_permanent_ones_drop_with_a_message() {
    let mut w = World::new();
    let s = settings("0");
    assert_eq!(
        (1..=5).map(|n| backoff(&s, n)).collect::<Vec<_>>(),
        [10, 20, 40, 60, 60]
    );
    w.raise(&catalog::pool_overcommitted(&w.db), at(0));
    w.intake(Some(&s), at(0));
    let m = due(&w.db, at(0)).remove(0);
    w.record(&m, &Delivery::Transient("451 later".into()), &s, at(1));
    assert!(due(&w.db, at(10)).is_empty());
    let m = due(&w.db, at(11)).remove(0);
    assert_eq!((m.attempts, m.last_answer.as_str()), (1, "451 later"));
    w.record(
        &m,
        &Delivery::Transient("connection refused".into()),
        &s,
        at(11),
    );
    assert!(due(&w.db, at(30)).is_empty());
    let m = due(&w.db, at(31)).remove(0);
    let before = w.db.count(Class::Message);
    w.record(&m, &Delivery::Permanent("554 refused".into()), &s, at(31));
    assert!(mails(&w.db).is_empty());
    assert_eq!(w.db.count(Class::Message), before + 1);
    // The report is never mailed.
    w.intake(Some(&s), at(32));
    assert!(mails(&w.db).is_empty());
    // Sent with no window: gone at once.
    w.raise(&catalog::pool_overcommitted(&w.db), at(40));
    w.intake(Some(&s), at(40));
    let m = due(&w.db, at(40)).remove(0);
    w.record(&m, &Delivery::Sent("250".into()), &s, at(40));
    assert!(mails(&w.db).is_empty());
    // An outcome for a mail that is gone changes nothing.
    assert!(
        record(
            &w.db,
            &m,
            &Delivery::Sent("250".into()),
            &s,
            at(41),
            Uuid::nil()
        )
        .is_empty()
    );
}
