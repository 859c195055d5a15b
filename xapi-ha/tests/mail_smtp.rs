//! Email alerts through a real SMTP server (aiosmtpd, `python/smtp_sink.py`)
//! from the real agent: the mail formats byte for byte, the priority
//! filter, several destinations, the server down then back (and an agent
//! restart in between: every mail arrives once), a 4xx then success, a 5xx
//! (dropped, with a message), a flapping alert coalesced, STARTTLS, TLS
//! and AUTH, and bad settings (a clear error, nothing sent).
//! Skips, saying why, when the venv with aiosmtpd is missing.

mod api_support;
mod mail_support;

use std::path::PathBuf;

use api_support::{Agent, call2, fail2, login};
use mail_support::*;
use serde_json::json;

macro_rules! python_or_skip {
    () => {
        match mail_support::python() {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        }
    };
}

fn sink_dir(agent: &Agent, name: &str) -> PathBuf {
    agent.dir.path().join(name)
}

#[test]
fn formats_priority_filter_and_destinations() {
    let py = python_or_skip!();
    let agent = Agent::start();
    let (a, s) = (agent.http, login(agent.http));
    let sink = Sink::start(
        &py,
        free_port(),
        &sink_dir(&agent, "sink"),
        &SinkOptions::default(),
    );
    let hub = format!("127.0.0.1:{}", sink.port);
    call2(a, "pool.set_name_label", json!([s, pool(a, &s), "pool0"]));
    set_other_config(
        a,
        &s,
        &[
            ("mail-destination", "ops@example.com, oncall@example.org"),
            ("mail-sender", "ha@example.com"),
            ("ssmtp-mailhub", &hub),
        ],
    );
    let host = first_field(a, &s, "host", "uuid");
    let pool_uuid = first_field(a, &s, "pool", "uuid");
    create_message(
        a,
        &s,
        "HA_HOST_FAILED",
        3,
        "Host",
        &host,
        "Server 'h2' has failed",
    );
    // Priority 5 > mail-min-priority 3 (the default): not mailed.
    create_message(a, &s, "VM_STARTED", 5, "Host", &host, "not mailed");
    let m = create_message(
        a,
        &s,
        "HA_POOL_OVERCOMMITTED",
        3,
        "Pool",
        &pool_uuid,
        "over & <committed>",
    );
    let got = wait_mails(&sink.out, 2);
    let first = &got[0];
    assert_eq!(first.mail_from, "ha@example.com");
    assert_eq!(first.rcpt_to, ["ops@example.com", "oncall@example.org"]);
    // The whole mail, byte for byte (the date is the sender's clock).
    let date = first.header("Date").expect("a Date header");
    assert_eq!(
        first.data,
        format!(
            "From: ha@example.com\r\n\
             To: ops@example.com, oncall@example.org\r\n\
             Subject: [pool0] xha-rs HA Alarm: Server 'h2' has failed\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             Date: {date}\r\n\
             \r\n\
             Server 'h2' has failed\r\n\
             \r\n\
             This alarm is set to be triggered when a host belonging to a high availability pool fails.\r\n"
        )
    );
    let rec = call2(a, "message.get_record", json!([s, m]));
    let second = &got[1];
    assert_eq!(
        second.header("Subject").as_deref(),
        Some(format!("[pool0] xha-rs Message: Pool {pool_uuid} HA_POOL_OVERCOMMITTED").as_str())
    );
    assert_eq!(
        second.body(),
        format!(
            "Field\t\tValue\r\n-----\t\t-----\r\nName:\t\tHA_POOL_OVERCOMMITTED\r\nPriority:\t3\r\nClass:\t\tPool\r\n\
             Object UUID:\t{pool_uuid}\r\nTimestamp:\t{}\r\nMessage UUID:\t{}\r\nPool name:\tpool0\r\n\
             Body:\t\tover & <committed>\r\n",
            rec["timestamp"].as_str().unwrap(),
            rec["uuid"].as_str().unwrap()
        )
    );
    // A barrier: one more mail, then exactly three arrived (VM_STARTED
    // was filtered), each once.
    create_message(a, &s, "HA_STATEFILE_LOST", 2, "Host", &host, "barrier");
    let all = wait_mails(&sink.out, 3);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let all_now = received(&sink.out);
    assert_eq!(all_now.len(), 3, "{all_now:#?}");
    assert!(all.iter().all(|m| !m.data.contains("VM_STARTED")));
}
