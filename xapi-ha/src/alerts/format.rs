//! A mail's subject and body, in the formats of xapi's `mail-alarm`
//! (`../shared/reference/xenapi.md` §5): `HA_HOST_FAILED` gets
//! `[<pool>] <brand> HA Alarm: <body>`, every other message the generic
//! field table. Texts come from the language file of `mail-language`.

use super::catalog::{self, names};
use super::lang::{self, Language};
use super::queue::Mail;
use super::settings::{DEFAULT_LANGUAGE, MailSettings};
use crate::db::Database;
use crate::value::DateTime;

/// The product name in subjects (mail-alarm's `PRODUCT_BRAND`).
pub const BRAND: &str = "xha-rs";

/// A mail's subject and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailText {
    pub subject: String,
    pub body: String,
}

fn language(settings: &MailSettings) -> Option<&'static Language> {
    Language::get(&settings.language).or_else(|| Language::get(DEFAULT_LANGUAGE))
}

/// The subject and body of `mail` for the pool in `db`.
#[must_use]
pub fn compose(db: &Database, settings: &MailSettings, mail: &Mail) -> MailText {
    compose_for(&catalog::pool_name(db), settings, mail)
}

/// [`compose`] with the pool's name given.
#[must_use]
pub fn compose_for(pool: &str, settings: &MailSettings, mail: &Mail) -> MailText {
    let Some(lang) = language(settings) else {
        return MailText {
            subject: format!("[{pool}] {BRAND} Message: {}", mail.name),
            body: mail.body.clone(),
        };
    };
    let priority = mail.priority.to_string();
    let timestamp = mail.first.to_string();
    let count = mail.count.to_string();
    let (first, last) = (mail.first.to_string(), mail.last.to_string());
    let values: [(&str, &str); 12] = [
        ("pool", pool),
        ("brand", BRAND),
        ("name", &mail.name),
        ("priority", &priority),
        ("cls", &mail.cls),
        ("obj_uuid", &mail.obj_uuid),
        ("timestamp", &timestamp),
        ("uuid", &mail.message_uuid),
        ("body", &mail.body),
        ("count", &count),
        ("first", &first),
        ("last", &last),
    ];
    let pair = if mail.name == names::HA_HOST_FAILED {
        &lang.ha_host_failed
    } else {
        &lang.generic
    };
    let mut body = lang::fill(&pair.body, &values);
    if mail.count > 1 {
        body.push_str(&lang::fill(&lang.coalesced.body, &values));
    }
    MailText {
        subject: lang::fill(&pair.subject, &values),
        body,
    }
}

/// The test mail of `pool.send_test_email`.
#[must_use]
pub fn test_mail(db: &Database, settings: &MailSettings, now: DateTime) -> MailText {
    let pool = catalog::pool_name(db);
    let Some(lang) = language(settings) else {
        return MailText {
            subject: format!("[{pool}] {BRAND} test message"),
            body: String::new(),
        };
    };
    let now = now.to_string();
    let values = [
        ("pool", pool.as_str()),
        ("brand", BRAND),
        ("timestamp", &now),
    ];
    MailText {
        subject: lang::fill(&lang.test.subject, &values),
        body: lang::fill(&lang.test.body, &values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::settings::{DESTINATION, MAILHUB};
    use crate::value::Ref;

    fn settings() -> MailSettings {
        MailSettings::from_pairs(
            &[
                (DESTINATION.into(), "ops@example.com".into()),
                (MAILHUB.into(), "localhost:25".into()),
            ],
            "h",
        )
        .unwrap()
    }

    fn mail(name: &str, body: &str, count: i64) -> Mail {
        Mail {
            r: Ref::NULL,
            name: name.into(),
            priority: 3,
            cls: "Host".into(),
            obj_uuid: "0d2a5a8e-0000-4000-8000-000000000001".into(),
            body: body.into(),
            message_uuid: "7e1f0c8e-0000-4000-8000-000000000002".into(),
            count,
            first: DateTime::from_unix(1_700_000_000),
            last: DateTime::from_unix(1_700_000_042),
            sent: false,
            attempts: 0,
            next_attempt: DateTime::EPOCH,
            sent_at: DateTime::EPOCH,
            last_answer: String::new(),
        }
    }

    #[test]
    fn host_failed_has_the_ha_alarm_subject_and_text() {
        let t = compose_for(
            "pool0",
            &settings(),
            &mail("HA_HOST_FAILED", "Server 'h2' has failed", 1),
        );
        assert_eq!(t.subject, "[pool0] xha-rs HA Alarm: Server 'h2' has failed");
        assert_eq!(
            t.body,
            "Server 'h2' has failed\n\nThis alarm is set to be triggered when a host belonging to a high availability pool fails."
        );
    }

    #[test]
    fn others_get_the_field_table_and_a_count_when_coalesced() {
        let t = compose_for("pool0", &settings(), &mail("HA_POOL_OVERCOMMITTED", "b", 3));
        assert_eq!(
            t.subject,
            "[pool0] xha-rs Message: Host 0d2a5a8e-0000-4000-8000-000000000001 HA_POOL_OVERCOMMITTED"
        );
        assert_eq!(
            t.body,
            "Field\t\tValue\n-----\t\t-----\nName:\t\tHA_POOL_OVERCOMMITTED\nPriority:\t3\nClass:\t\tHost\n\
             Object UUID:\t0d2a5a8e-0000-4000-8000-000000000001\nTimestamp:\t20231114T22:13:20Z\n\
             Message UUID:\t7e1f0c8e-0000-4000-8000-000000000002\nPool name:\tpool0\nBody:\t\tb\n\
             \nThis alert was raised 3 times from 20231114T22:13:20Z to 20231114T22:14:02Z."
        );
    }
}
