//! The HA alerts of a real pool (docs/alerts.md): real agents with real
//! `xhad` and `xha-supervisor`, one shared `file` SR, HA enabled, and a
//! real SMTP server (aiosmtpd, `mail_support`) for the mails.
//!
//! - A fenced member's next boot: `xhad`'s fence record (written and moved
//!   aside by `xhad`'s own `fence_record` code, as a daemon of a later boot
//!   does) is found by the member's agent when it starts with HA armed;
//!   `HA_HOST_WAS_FENCED` and `HA_HOST_FENCE_REASON` reach the master
//!   (`host.peer_raise_messages`), once, and the reason is mailed; a second
//!   restart raises nothing again, a newer record is reported.
//!   The same on the master of a pool of one, which records its own.
//! - The overcommit mail: on a pool of two (16 GiB each) tolerating one
//!   failure, a protected 10 GiB VM runs; `xe vm-start` of a second one on
//!   the other host is
//!   refused (`HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN`); after `xe
//!   pool-param-set ha-allow-overcommit=true`, `xe vm-start --force`
//!   starts it, the pool is overcommitted and aiosmtpd receives the
//!   `HA_POOL_OVERCOMMITTED` mail (subject and body as the formats say).
//! - The metadata volume refusing writes (an immutable file: EPERM on the
//!   agent's open descriptor), then taking them again:
//!   `METADATA_LUN_BROKEN` and `METADATA_LUN_HEALTHY` (pool
//!   `other_config:metadata_lun_alerts=true`), once, recorded with the
//!   first commit that works; the broken one mailed.
//!
//! The tests take turns (one lock): each runs several agents and daemons.
//! Without the aiosmtpd venv they print why they skip.

mod api_support;
mod mail_support;
mod pool_support;

use std::path::Path;
use std::process::{Command, Output};

use api_support::{Agent, PASSWORD, USER};
use mail_support::{Sink, SinkOptions, free_port, wait_mails};
use pool_support::ha::{HaPool, protected_sleeper_on, xhad_dir};
use pool_support::{Host, StopVmsOnDrop, host_ref, vm_pid, wait_for, xe_binary};
use serde_json::{Value, json};
use xha::daemon::fence_record;

const T: u64 = 10;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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

/// The master's messages named `name` about `obj_uuid`.
fn messages_named(p: &HaPool, name: &str, obj_uuid: &str) -> Vec<Value> {
    p.call("message.get_all_records", json!([]))
        .as_object()
        .expect("records")
        .values()
        .filter(|m| m["name"] == name && m["obj_uuid"] == obj_uuid)
        .cloned()
        .collect()
}

/// Mail settings on the master: every message of priority <= 3 to the sink.
fn mail_to(p: &HaPool, sink: &Sink) {
    let hub = format!("127.0.0.1:{}", sink.port);
    p.call("pool.set_name_label", json!([p.pool, "hapool"]));
    p.call(
        "pool.add_to_other_config",
        json!([p.pool, "mail-destination", "ops@example.com"]),
    );
    p.call(
        "pool.add_to_other_config",
        json!([p.pool, "ssmtp-mailhub", hub]),
    );
    p.call(
        "pool.add_to_other_config",
        json!([p.pool, "mail-coalesce-seconds", "0"]),
    );
}

/// `xhad` of an earlier boot decided to fence (`reason`); the daemon of
/// the next boot moved its record aside, as at its start-up.
fn fenced_in_an_earlier_boot(h: &Host, boot: &str, reason: &str) -> String {
    let state = xhad_dir(h).join("state");
    fence_record::write(&state, boot, reason).expect("fence record");
    let text = std::fs::read_to_string(state.join(fence_record::FILE_NAME)).expect("record");
    let now = fence_record::boot_id().expect("boot id");
    assert!(fence_record::check(&state, &now).expect("check").is_none());
    assert!(state.join(fence_record::EARLIER_FILE_NAME).exists());
    text
}

/// The key the agent keeps for a record's text (`boot at ms`).
fn key_of(text: &str) -> String {
    let mut lines = text.lines();
    let boot = lines
        .next()
        .and_then(|l| l.strip_prefix("boot "))
        .expect("boot");
    let at = lines
        .nth(1)
        .and_then(|l| l.strip_prefix("at "))
        .expect("at");
    format!("{boot} at {at}")
}

fn restart_agent(p: &mut HaPool, i: usize) {
    let h = p.hosts.hosts.remove(i);
    let agent: Agent = h.agent.kill9_and_restart();
    p.hosts.hosts.insert(i, Host { agent, ..h });
}

fn reported(h: &Host) -> String {
    std::fs::read_to_string(h.agent.dir.path().join("data/fence-reported")).unwrap_or_default()
}

#[test]
fn fenced_member_reports_on_its_next_boot_through_the_master_once() {
    let _turn = serial();
    let py = python_or_skip!();
    let (mut p, _) = HaPool::enabled(2, T);
    let sink_dir = p.master().agent.dir.path().join("sink");
    let sink = Sink::start(&py, free_port(), &sink_dir, &SinkOptions::default());
    mail_to(&p, &sink);
    let member_uuid = p.hosts.hosts[1].uuid.clone();
    let reason = "the lease ran out: no statefile write (nor, with the statefile lost, a network round) renewed it in time";

    let text = fenced_in_an_earlier_boot(&p.hosts.hosts[1], "boot-before-the-fence", reason);
    let restarted = std::time::Instant::now();
    restart_agent(&mut p, 1);

    let fenced = wait_for("HA_HOST_WAS_FENCED on the master", || {
        let m = messages_named(&p, "HA_HOST_WAS_FENCED", &member_uuid);
        (!m.is_empty()).then_some(m)
    });
    eprintln!(
        "FIGURE member agent (re)start -> HA_HOST_WAS_FENCED on the master: {:?}",
        restarted.elapsed()
    );
    assert_eq!(fenced.len(), 1, "{fenced:?}");
    assert_eq!(fenced[0]["priority"], json!(4));
    assert_eq!(fenced[0]["cls"], json!("Host"));
    assert_eq!(fenced[0]["body"], json!(""));
    let why = wait_for("HA_HOST_FENCE_REASON on the master", || {
        let m = messages_named(&p, "HA_HOST_FENCE_REASON", &member_uuid);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(why.len(), 1, "{why:?}");
    assert_eq!(why[0]["priority"], json!(3));
    let body = why[0]["body"].as_str().expect("body").to_owned();
    assert!(
        body.starts_with(&format!(
            "Server 'host-2' fenced itself: {reason} (decided at "
        )),
        "{body}"
    );
    assert!(body.ends_with(", boot boot-before-the-fence)"), "{body}");
    wait_for("the member remembers the record reported", || {
        (reported(&p.hosts.hosts[1]).trim() == key_of(&text)).then_some(())
    });

    // The reason is mailed (priority 3); HA_HOST_WAS_FENCED (4) is not.
    let mails = wait_mails(&sink_dir, 1);
    let subject = mails[0].header("Subject").expect("subject");
    assert_eq!(
        subject,
        format!("[hapool] xha-rs Message: Host {member_uuid} HA_HOST_FENCE_REASON")
    );
    assert!(
        mails[0].body().contains(&format!("Body:\t\t{body}")),
        "{}",
        mails[0].body()
    );

    // Restarted again: the same record is not reported again; a newer one
    // (the next fence) is, once.
    restart_agent(&mut p, 1);
    let text2 = fenced_in_an_earlier_boot(
        &p.hosts.hosts[1],
        "boot-of-the-second-fence",
        "host 00000000-0000-0000-0000-000000000001 (index 0) is in the surviving partition and this host is not",
    );
    restart_agent(&mut p, 1);
    wait_for("the second fence reported", || {
        (messages_named(&p, "HA_HOST_WAS_FENCED", &member_uuid).len() >= 2).then_some(())
    });
    wait_for("the member remembers the second record", || {
        (reported(&p.hosts.hosts[1]).trim() == key_of(&text2)).then_some(())
    });
    assert_eq!(
        messages_named(&p, "HA_HOST_WAS_FENCED", &member_uuid).len(),
        2
    );
    let reasons = messages_named(&p, "HA_HOST_FENCE_REASON", &member_uuid);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|m| m["body"]
            .as_str()
            .is_some_and(|b| b.contains("surviving partition"))),
        "{reasons:?}"
    );
    let mails = wait_mails(&sink_dir, 2);
    assert_eq!(mails.len(), 2, "one mail per reason");
    drop(sink);
}

/// `xe` against the master.
fn xe(p: &HaPool, known: &Path, args: &[&str]) -> Output {
    Command::new(xe_binary())
        .args(["-s", &p.master().address, "-p", &p.hosts.port.to_string()])
        .args(["-u", USER, "-pw", PASSWORD, "--trust-new"])
        .args(args)
        .env("XE_KNOWN_HOSTS", known)
        .output()
        .expect("run xe")
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "xe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A process VM of `gib` GiB with restart priority `restart` (protected
/// once started; it sleeps until stopped).
fn protected_vm(p: &HaPool, name: &str, gib: u64) -> (String, String) {
    let r = p.call(
        "VM.create",
        json!([{
            "name_label": name,
            "memory_static_max": gib << 30,
            "driver": "process",
            "driver_config": {"command": "exec sleep 3600"},
            "ha_restart_priority": "restart",
        }]),
    );
    let r = r.as_str().expect("VM ref").to_owned();
    let uuid = p.call("VM.get_uuid", json!([r]));
    (r, uuid.as_str().expect("uuid").to_owned())
}

#[test]
fn overcommit_by_xe_vm_start_force_is_mailed() {
    let _turn = serial();
    let py = python_or_skip!();
    let (p, _) = HaPool::enabled(2, T);
    let _vms = StopVmsOnDrop::of(&p.hosts);
    let sink_dir = p.master().agent.dir.path().join("sink");
    let sink = Sink::start(&py, free_port(), &sink_dir, &SinkOptions::default());
    mail_to(&p, &sink);
    let known = p.master().agent.dir.path().join("xe-known-hosts");
    let pool_uuid = p.call("pool.get_uuid", json!([p.pool]));
    let pool_uuid = pool_uuid.as_str().expect("pool uuid").to_owned();

    p.call("pool.set_ha_host_failures_to_tolerate", json!([p.pool, 1]));
    let (first, _) = protected_vm(&p, "big-1", 10);
    p.call("VM.start", json!([first, false, false]));
    assert_eq!(
        p.call("pool.get_ha_overcommitted", json!([p.pool])),
        json!(false)
    );
    let (second_ref, second) = protected_vm(&p, "big-2", 10);

    // Refused while overcommitting is not allowed, force or not.
    let on = format!("on={}", p.hosts.hosts[1].uuid);
    let out = xe(
        &p,
        &known,
        &["vm-start", &format!("uuid={second}"), &on, "--force"],
    );
    // xe's API-error exit and xapi's text of the error.
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("it would invalidate VM failover planning"),
        "{err}"
    );
    assert_eq!(
        p.call("VM.get_power_state", json!([second_ref])),
        json!("Halted")
    );

    stdout_ok(&xe(
        &p,
        &known,
        &[
            "pool-param-set",
            &format!("uuid={pool_uuid}"),
            "ha-allow-overcommit=true",
        ],
    ));
    let forced = std::time::Instant::now();
    stdout_ok(&xe(
        &p,
        &known,
        &["vm-start", &format!("uuid={second}"), &on, "--force"],
    ));
    wait_for("the pool overcommitted", || {
        (p.call("pool.get_ha_overcommitted", json!([p.pool])) == json!(true)).then_some(())
    });
    let raised = messages_named(&p, "HA_POOL_OVERCOMMITTED", &pool_uuid);
    assert_eq!(raised.len(), 1, "{raised:?}");
    let m = &raised[0];

    // HA_POOL_DROP_IN_PLAN_EXISTS_FOR (priority 3) is mailed too.
    let mail = mail_support::wait_for(60, "the overcommit mail", || {
        mail_support::received(&sink_dir)
            .into_iter()
            .find(|r| r.data.contains("HA_POOL_OVERCOMMITTED"))
    });
    eprintln!(
        "FIGURE xe vm-start --force -> HA_POOL_OVERCOMMITTED mail received: {:?}",
        forced.elapsed()
    );
    assert!(mail.mail_from.starts_with("noreply@"), "{}", mail.mail_from);
    assert_eq!(mail.rcpt_to, ["ops@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some(format!("[hapool] xha-rs Message: Pool {pool_uuid} HA_POOL_OVERCOMMITTED").as_str())
    );
    assert_eq!(
        mail.body(),
        format!(
            "Field\t\tValue\r\n-----\t\t-----\r\nName:\t\tHA_POOL_OVERCOMMITTED\r\nPriority:\t3\r\nClass:\t\tPool\r\n\
             Object UUID:\t{pool_uuid}\r\nTimestamp:\t{}\r\nMessage UUID:\t{}\r\nPool name:\thapool\r\n\
             Body:\t\tThe failover tolerance for pool 'hapool' has dropped and the initially specified number of host failures to tolerate can no longer be guaranteed\r\n",
            m["timestamp"].as_str().expect("timestamp"),
            m["uuid"].as_str().expect("uuid")
        )
    );
    drop(sink);
}

/// `chattr` on `path`; false when the file system does not take it.
fn chattr(flag: &str, path: &Path) -> bool {
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

fn lsattr_immutable(path: &Path) -> bool {
    Command::new("lsattr").arg(path).output().is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .is_some_and(|flags| flags.contains('i'))
    })
}

/// Clears the immutable flag when dropped (a failing test included).
struct Mutable<'a>(&'a Path);

impl Drop for Mutable<'_> {
    fn drop(&mut self) {
        let _ = chattr("-i", self.0);
    }
}

/// The metadata volume of the HA-enabled master `h` (its `ha-state.toml`).
fn metadata_volume(h: &Host) -> std::path::PathBuf {
    let state = std::fs::read_to_string(h.agent.dir.path().join("data/ha-state.toml"))
        .expect("ha-state.toml");
    let state: toml::Value = toml::from_str(&state).expect("ha-state.toml parses");
    std::path::PathBuf::from(state["metadata"].as_str().expect("metadata path"))
}

/// The volume refuses writes until the guard drops (an immutable file:
/// EPERM on the agent's open O_DIRECT descriptor too), as a failing LUN
/// would; `None` (printed) where `chattr +i` cannot work.
fn failing(volume: &Path) -> Option<Mutable<'_>> {
    if !chattr("+i", volume) {
        eprintln!(
            "SKIPPED: chattr +i {} failed (not root, or the file system has no immutable flag)",
            volume.display()
        );
        return None;
    }
    Some(Mutable(volume))
}

#[test]
fn metadata_volume_writes_failing_then_working_raise_broken_then_healthy() {
    let _turn = serial();
    let py = python_or_skip!();
    let (p, _) = HaPool::enabled(1, T);
    let sink_dir = p.master().agent.dir.path().join("sink");
    let sink = Sink::start(&py, free_port(), &sink_dir, &SinkOptions::default());
    mail_to(&p, &sink);
    p.call(
        "pool.add_to_other_config",
        json!([p.pool, "metadata_lun_alerts", "true"]),
    );
    let pool_uuid = p.call("pool.get_uuid", json!([p.pool]));
    let pool_uuid = pool_uuid.as_str().expect("pool uuid").to_owned();
    let volume = metadata_volume(p.master());
    let Some(guard) = failing(&volume) else {
        return;
    };
    let e = api_support::fail2(
        p.master().agent.http,
        "pool.set_name_description",
        json!([p.s, p.pool, "while broken"]),
    );
    drop(guard);
    assert!(!lsattr_immutable(&volume), "chattr -i {}", volume.display());
    assert_eq!(e[0], "INTERNAL_ERROR", "{e:?}");
    assert!(
        messages_named(&p, "METADATA_LUN_BROKEN", &pool_uuid).is_empty(),
        "nothing can be recorded while the volume fails"
    );

    // The next commit works: both messages, once.
    p.call(
        "pool.set_name_description",
        json!([p.pool, "after the recovery"]),
    );
    let broken = messages_named(&p, "METADATA_LUN_BROKEN", &pool_uuid);
    let healthy = messages_named(&p, "METADATA_LUN_HEALTHY", &pool_uuid);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(healthy.len(), 1, "{healthy:?}");
    assert_eq!(broken[0]["priority"], json!(3));
    assert_eq!(healthy[0]["priority"], json!(4));
    assert_eq!(broken[0]["body"], json!("Redo log [metadata]"));
    assert_eq!(healthy[0]["body"], json!("Redo log [metadata]"));
    let at = |m: &Value| m["timestamp"].as_str().expect("timestamp").to_owned();
    assert!(at(&broken[0]) <= at(&healthy[0]), "{broken:?} {healthy:?}");
    p.call("pool.set_name_description", json!([p.pool, "again"]));
    assert_eq!(
        messages_named(&p, "METADATA_LUN_HEALTHY", &pool_uuid).len(),
        1,
        "once per broken period"
    );

    // METADATA_LUN_BROKEN (3) is mailed; METADATA_LUN_HEALTHY (4) is not.
    let mail = mail_support::wait_for(60, "the METADATA_LUN_BROKEN mail", || {
        mail_support::received(&sink_dir)
            .into_iter()
            .find(|r| r.data.contains("METADATA_LUN_BROKEN"))
    });
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some(format!("[hapool] xha-rs Message: Pool {pool_uuid} METADATA_LUN_BROKEN").as_str())
    );
    drop(sink);
}

/// The drivers report a VM's stop once. A protected VM that dies on the
/// master while the metadata volume refuses writes cannot be recorded
/// Halted then; the agent keeps the stop and records it once the volume
/// works, and HA starts the VM again. Before, the stop was dropped: the
/// database said the VM ran for ever and nobody restarted it (the fault
/// campaign: a master's storage failing for 5 s while a VM exited).
#[test]
fn a_stop_the_failing_metadata_volume_refused_is_recorded_once_it_works() {
    let _turn = serial();
    let (p, _) = HaPool::enabled(1, T);
    let master = p.master();
    let (vm, uuid) = protected_sleeper_on(&p, &host_ref(master, master), "dies-while-broken");
    let _vms = StopVmsOnDrop::of(&p.hosts);
    let first = wait_for("the VM's pid", || vm_pid(master, &uuid));
    let volume = metadata_volume(master);
    let Some(guard) = failing(&volume) else {
        return;
    };
    let _ = master.agent.log_lines();
    // The VM dies (as if it crashed) while nothing can be recorded.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the VM");
    wait_for("the agent's failed record of the stop", || {
        master
            .agent
            .log_lines()
            .iter()
            .any(|l| l.contains("committing stopped VMs failed"))
            .then_some(())
    });
    assert_eq!(
        p.call("VM.get_power_state", json!([vm])),
        json!("Running"),
        "recorded while the volume refuses writes"
    );
    drop(guard);
    assert!(!lsattr_immutable(&volume), "chattr -i {}", volume.display());
    // Recorded at a later poll; HA starts it again (a new process), and
    // the record says Running once the start is committed (the process
    // exists a moment before that).
    let again = wait_for("the protected VM running again", || {
        vm_pid(master, &uuid).filter(|pid| {
            *pid != first
                && pool_support::process_alive(*pid)
                && p.call("VM.get_power_state", json!([vm])) == json!("Running")
        })
    });
    assert_ne!(again, first);
}

#[test]
fn fenced_master_of_a_pool_of_one_reports_itself_once() {
    let _turn = serial();
    let (mut p, _) = HaPool::enabled(1, T);
    let uuid = p.master().uuid.clone();
    let text = fenced_in_an_earlier_boot(
        p.master(),
        "boot-of-the-fence",
        "the watchdog failed while armed",
    );
    restart_agent(&mut p, 0);
    p.s = pool_support::session(p.master());
    let why = wait_for("HA_HOST_FENCE_REASON on the master", || {
        let m = messages_named(&p, "HA_HOST_FENCE_REASON", &uuid);
        (!m.is_empty()).then_some(m)
    });
    let body = why[0]["body"].as_str().expect("body");
    assert!(
        body.starts_with(
            "Server 'host-1' fenced itself: the watchdog failed while armed (decided at "
        ),
        "{body}"
    );
    assert_eq!(messages_named(&p, "HA_HOST_WAS_FENCED", &uuid).len(), 1);
    wait_for("the record remembered", || {
        (reported(p.master()).trim() == key_of(&text)).then_some(())
    });
    // Restarted again: nothing new (the messages are recorded once even
    // if the file were lost; the file says the record was reported).
    restart_agent(&mut p, 0);
    p.s = pool_support::session(p.master());
    p.call(
        "pool.set_name_description",
        json!([p.pool, "a barrier commit"]),
    );
    assert_eq!(messages_named(&p, "HA_HOST_WAS_FENCED", &uuid).len(), 1);
    assert_eq!(messages_named(&p, "HA_HOST_FENCE_REASON", &uuid).len(), 1);
}
