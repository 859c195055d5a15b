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

/// The settings every delivery test uses: fast retries.
fn fast(hub: &str) -> Vec<(&'static str, String)> {
    vec![
        ("mail-destination", "ops@example.com".into()),
        ("ssmtp-mailhub", hub.to_owned()),
        ("mail-retry-seconds", "1".into()),
        ("mail-retry-max-seconds", "2".into()),
        ("mail-smtp-timeout", "5".into()),
    ]
}

fn apply(a: std::net::SocketAddr, s: &str, pairs: &[(&'static str, String)]) {
    let p: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    set_other_config(a, s, &p);
}

/// The message body of each received mail (`Body:` line of the table).
fn bodies(mails: &[Received]) -> Vec<String> {
    mails
        .iter()
        .map(|m| {
            m.body()
                .lines()
                .find_map(|l| l.strip_prefix("Body:\t\t"))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn server_down_then_back_and_agent_restart_every_mail_once() {
    let py = python_or_skip!();
    let agent = Agent::start();
    let (a, s) = (agent.http, login(agent.http));
    let port = free_port();
    apply(a, &s, &fast(&format!("127.0.0.1:{port}")));
    let pool_uuid = first_field(a, &s, "pool", "uuid");
    for i in 0..3 {
        create_message(
            a,
            &s,
            "HA_POOL_DROP_IN_PLAN_EXISTS_FOR",
            3,
            "Pool",
            &pool_uuid,
            &i.to_string(),
        );
    }
    // Nobody listens: every mail is tried and stays queued.
    wait_for(60, "three failed attempts", || {
        let q = queue(a, &s);
        (q.len() == 3 && q.iter().all(|m| m["attempts"].as_i64() >= Some(1))).then_some(())
    });
    // The queue is in the pool database: it survives SIGKILL.
    let agent = agent.kill9_and_restart();
    let (a, s) = (agent.http, login(agent.http));
    assert_eq!(queue(a, &s).len(), 3);
    let sink = Sink::start(
        &py,
        port,
        &sink_dir(&agent, "sink"),
        &SinkOptions::default(),
    );
    let got = wait_mails(&sink.out, 3);
    let mut b = bodies(&got);
    b.sort();
    assert_eq!(b, ["0", "1", "2"]);
    // A barrier mail, then still each exactly once.
    create_message(a, &s, "HA_STATEFILE_LOST", 2, "Pool", &pool_uuid, "barrier");
    wait_mails(&sink.out, 4);
    assert_eq!(received(&sink.out).len(), 4);
}

#[test]
fn transient_4xx_then_success() {
    let py = python_or_skip!();
    let agent = Agent::start();
    let (a, s) = (agent.http, login(agent.http));
    let sink = Sink::start(
        &py,
        free_port(),
        &sink_dir(&agent, "sink"),
        &SinkOptions::default(),
    );
    sink.set_mode("4xx");
    apply(a, &s, &fast(&format!("127.0.0.1:{}", sink.port)));
    let pool_uuid = first_field(a, &s, "pool", "uuid");
    create_message(a, &s, "HA_POOL_OVERCOMMITTED", 3, "Pool", &pool_uuid, "x");
    let answer = wait_for(60, "a 451 answer recorded", || {
        let q = queue(a, &s);
        let m = q.first()?;
        let ans = m["last_answer"].as_str()?.to_owned();
        (ans.contains("451") && m["state"] == "queued").then_some(ans)
    });
    assert!(answer.contains("try again later"), "{answer}");
    sink.set_mode("ok");
    let got = wait_mails(&sink.out, 1);
    assert_eq!(bodies(&got), ["x"]);
    wait_for(60, "the mail recorded as sent", || {
        queue(a, &s)
            .iter()
            .all(|m| m["state"] == "sent")
            .then_some(())
    });
    assert_eq!(received(&sink.out).len(), 1);
}

#[test]
fn permanent_5xx_drops_the_mail_with_a_message() {
    let py = python_or_skip!();
    let agent = Agent::start();
    let (a, s) = (agent.http, login(agent.http));
    let sink = Sink::start(
        &py,
        free_port(),
        &sink_dir(&agent, "sink"),
        &SinkOptions::default(),
    );
    sink.set_mode("5xx");
    apply(a, &s, &fast(&format!("127.0.0.1:{}", sink.port)));
    let pool_uuid = first_field(a, &s, "pool", "uuid");
    create_message(
        a,
        &s,
        "HA_POOL_OVERCOMMITTED",
        3,
        "Pool",
        &pool_uuid,
        "refused",
    );
    let report = wait_for(60, "MAIL_DELIVERY_FAILED", || {
        messages(a, &s)
            .into_iter()
            .find(|m| m["name"] == "MAIL_DELIVERY_FAILED")
    });
    let body = report["body"].as_str().unwrap();
    assert!(
        body.contains("554") && body.contains("ops@example.com"),
        "{body}"
    );
    assert_eq!(report["priority"], 3);
    assert!(queue(a, &s).is_empty(), "the refused mail is dropped");
    // The report itself is never mailed (it could loop); later mails go.
    sink.set_mode("ok");
    create_message(a, &s, "HA_STATEFILE_LOST", 2, "Pool", &pool_uuid, "after");
    let got = wait_mails(&sink.out, 1);
    assert_eq!(bodies(&got), ["after"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(received(&sink.out).len(), 1);
}

#[test]
fn flapping_alert_is_coalesced_into_a_mail_that_says_how_many() {
    let py = python_or_skip!();
    let agent = Agent::start();
    let (a, s) = (agent.http, login(agent.http));
    let sink = Sink::start(
        &py,
        free_port(),
        &sink_dir(&agent, "sink"),
        &SinkOptions::default(),
    );
    let mut settings = fast(&format!("127.0.0.1:{}", sink.port));
    // A window long enough that all 20 arrive within it even on a slow machine.
    settings.push(("mail-coalesce-seconds", "10".into()));
    apply(a, &s, &settings);
    let host = first_field(a, &s, "host", "uuid");
    for _ in 0..20 {
        create_message(
            a,
            &s,
            "HA_HOST_FAILED",
            3,
            "Host",
            &host,
            "Server 'h2' has failed",
        );
    }
    // The first goes out at once or with the others; the rest wait for
    // the window and come as one mail. Together they count 20.
    let count = |m: &Received| -> usize {
        m.body()
            .split("This alert was raised ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .map_or(1, |n| n.parse().expect("a count"))
    };
    let got = wait_for(60, "mails counting 20 alerts", || {
        let r = received(&sink.out);
        (r.iter().map(count).sum::<usize>() >= 20).then_some(r)
    });
    assert!(got.len() <= 2, "{} mails for one flapping alert", got.len());
    assert_eq!(got.iter().map(count).sum::<usize>(), 20);
    let last = got.last().unwrap();
    assert!(
        last.body().contains(&format!(
            "This alert was raised {} times from ",
            count(last)
        )),
        "{}",
        last.body()
    );
}

/// A self-signed certificate for 127.0.0.1 (PEM files in `dir`).
fn certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate");
    let (cert, key) = (dir.join("smtp-cert.pem"), dir.join("smtp-key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("cert file");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("key file");
    (cert, key)
}

fn password_file(dir: &std::path::Path, password: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join("smtp-password");
    std::fs::write(&p, format!("{password}\n")).expect("password file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

fn send_test(a: std::net::SocketAddr, s: &str) -> Result<String, Vec<String>> {
    let (_, v) = api_support::jsonrpc(
        a,
        &json!({"jsonrpc": "2.0", "method": "pool.send_test_email", "params": [s], "id": 1}),
    );
    match v.get("result") {
        Some(r) => Ok(r.as_str().expect("answer").to_owned()),
        None => Err(
            std::iter::once(v["error"]["message"].as_str().unwrap().to_owned())
                .chain(
                    v["error"]["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_str().unwrap().to_owned()),
                )
                .collect(),
        ),
    }
}

#[test]
fn starttls_tls_and_auth_with_the_test_mail() {
    let py = python_or_skip!();
    let agent = Agent::start();
    let (a, s) = (agent.http, login(agent.http));
    let dir = agent.dir.path();
    let (cert, key) = certificate(dir);
    let opts = SinkOptions {
        starttls: Some((cert.clone(), key.clone())),
        auth: Some("mailer:s3cret".into()),
        ..SinkOptions::default()
    };
    let sink = Sink::start(&py, free_port(), &dir.join("sink"), &opts);
    let pw = password_file(dir, "s3cret", 0o600);
    let hub = format!("127.0.0.1:{}", sink.port);
    let mut base = fast(&hub);
    base.extend([
        ("mail-smtp-tls", "starttls".to_owned()),
        ("mail-smtp-user", "mailer".to_owned()),
        ("mail-smtp-password-file", pw.display().to_string()),
        ("mail-smtp-ca-file", cert.display().to_string()),
    ]);
    apply(a, &s, &base);
    let answer = send_test(a, &s).expect("the test mail is accepted");
    assert!(answer.starts_with("250 "), "{answer}");
    let got = wait_mails(&sink.out, 1);
    assert!(
        got[0]
            .header("Subject")
            .unwrap()
            .ends_with("xha-rs test message")
    );

    // A password file others can read is refused before connecting.
    password_file(dir, "s3cret", 0o644);
    let e = send_test(a, &s).unwrap_err();
    assert_eq!(e[0], "MAIL_SEND_FAILED", "{e:?}");
    assert!(e[2].contains("readable by root only"), "{e:?}");
    // A wrong password: the server's 535.
    password_file(dir, "wrong", 0o600);
    let e = send_test(a, &s).unwrap_err();
    assert!(e[2].contains("535"), "{e:?}");
    password_file(dir, "s3cret", 0o600);
    // Without the CA the server's certificate is not trusted.
    let no_ca: Vec<_> = base
        .iter()
        .filter(|(k, _)| *k != "mail-smtp-ca-file")
        .cloned()
        .collect();
    apply(a, &s, &no_ca);
    let e = send_test(a, &s).unwrap_err();
    assert_eq!(e[0], "MAIL_SEND_FAILED", "{e:?}");
    // Without TLS the server (STARTTLS required) refuses.
    let mut plain = base.clone();
    plain.retain(|(k, _)| *k != "mail-smtp-tls");
    apply(a, &s, &plain);
    let e = send_test(a, &s).unwrap_err();
    assert_eq!(e[0], "MAIL_SEND_FAILED", "{e:?}");
    assert_eq!(received(&sink.out).len(), 1);

    // TLS from the first byte.
    let tls_sink = Sink::start(
        &py,
        free_port(),
        &dir.join("sink-tls"),
        &SinkOptions {
            tls: Some((cert.clone(), key)),
            auth: Some("mailer:s3cret".into()),
            ..SinkOptions::default()
        },
    );
    let mut tls = base.clone();
    for (k, v) in &mut tls {
        match *k {
            "mail-smtp-tls" => *v = "tls".into(),
            "ssmtp-mailhub" => *v = format!("127.0.0.1:{}", tls_sink.port),
            _ => {}
        }
    }
    apply(a, &s, &tls);
    let answer = send_test(a, &s).expect("accepted over TLS");
    assert!(answer.starts_with("250 "), "{answer}");
    wait_mails(&tls_sink.out, 1);
}

#[test]
fn bad_settings_are_refused_and_nothing_is_sent() {
    let py = python_or_skip!();
    let agent = Agent::start();
    let (a, s) = (agent.http, login(agent.http));
    let sink = Sink::start(
        &py,
        free_port(),
        &sink_dir(&agent, "sink"),
        &SinkOptions::default(),
    );
    let p = pool(a, &s);
    let pool_uuid = first_field(a, &s, "pool", "uuid");
    // Without mail-destination: the test mail says so; messages are not
    // mailed (nor later, once it is set).
    let e = send_test(a, &s).unwrap_err();
    assert_eq!(
        e[..2],
        ["INVALID_VALUE", "other_config:mail-destination"],
        "{e:?}"
    );
    create_message(
        a,
        &s,
        "HA_STATEFILE_LOST",
        2,
        "Pool",
        &pool_uuid,
        "unconfigured",
    );
    let before = call2(a, "pool.get_other_config", json!([s, p]));
    for (key, value) in [
        ("mail-min-priority", "9"),
        ("mail-destination", "not an address"),
        ("mail-smtp-tls", "ssl"),
        ("ssmtp-mailhub", "host:99999"),
        ("mail-language", "xx-XX"),
        ("mail-smtp-password-file", "relative"),
    ] {
        let e = fail2(a, "pool.add_to_other_config", json!([s, p, key, value]));
        assert_eq!(
            e[..3],
            [
                "INVALID_VALUE".to_owned(),
                format!("other_config:{key}"),
                value.to_owned()
            ],
            "{e:?}"
        );
        let e = set_other_config_fails(a, &s, &[(key, value)]);
        assert_eq!(e[1], format!("other_config:{key}"), "{e:?}");
        assert_eq!(
            call2(a, "pool.get_other_config", json!([s, p])),
            before,
            "nothing changed"
        );
    }
    apply(a, &s, &fast(&format!("127.0.0.1:{}", sink.port)));
    create_message(
        a,
        &s,
        "HA_STATEFILE_LOST",
        2,
        "Pool",
        &pool_uuid,
        "configured",
    );
    let got = wait_mails(&sink.out, 1);
    assert_eq!(bodies(&got), ["configured"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        received(&sink.out).len(),
        1,
        "the unconfigured alert was not mailed"
    );
}
