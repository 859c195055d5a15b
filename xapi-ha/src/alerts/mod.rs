//! Alerts that reach people: the catalog of the pool's messages (names,
//! priorities, classes and bodies as xapi raises them), the email settings
//! read from the pool's `other_config`, the mail texts (from a language
//! file built in), and the pure mail queue kept in the pool database. The
//! sender at the edge is `server::mailer`. See docs/alerts.md.

pub mod catalog;
pub mod format;
pub mod forward; // alerts: a member's messages reach the master
pub mod lang;
pub mod lun_health; // alerts: METADATA_LUN_BROKEN / _HEALTHY
pub mod queue;
pub mod settings;

pub use catalog::{Alert, raise};
pub use settings::MailSettings;

/// The call that sends a test mail and answers the SMTP server's reply
/// (ours; answered by the agent, which does the I/O).
pub const TEST_MAIL_METHOD: &str = "pool.send_test_email";
