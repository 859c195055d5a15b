//! `pool.enable_ha` and `pool.disable_ha` on a pool of one, with real
//! processes: the `xapi-ha` agent, `xhad` and `xha-supervisor` (process
//! launcher), a `file` SR in a temporary directory (docs/ha-enable.md).
//!
//! `xhad` and `xha-supervisor` are the workspace's own, built beside the
//! agent under test (`api_support::xha_bins`).

mod api_support;
mod ha_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use api_support::{Agent, call2, config_text, fail2, xha_bins};
use ha_support::{Pool, XhadSection, alive, ha_agent as agent, pid_in, pool, wait_gone};
use serde_json::{Value, json};
use xha_lab::agent::StopDaemons;

/// An agent whose `xhad` is `xhad` (process launcher), its xhad files in
/// `<dir>/xhad`.
fn agent_with(xhad: &Path, supervisor: &Path) -> Agent {
    let section = XhadSection::with(xhad, supervisor);
    Agent::start_configured(move |dir| config_text(dir, "") + &section.text(dir))
}

/// A `file` SR on a new directory under the agent's temporary directory.
fn file_sr(a: &Agent, p: &Pool, name: &str, shared: bool) -> (String, PathBuf) {
    let dir = a.dir.path().join(name);
    std::fs::create_dir(&dir).expect("SR dir");
    let sr = call2(
        a.http,
        "SR.create",
        json!([p.s, p.host, {"path": dir.display().to_string()}, 0, name, "", "file", "", shared, {}]),
    );
    (sr.as_str().expect("SR ref").to_owned(), dir)
}

fn pool_field(a: &Agent, p: &Pool, field: &str) -> Value {
    call2(a.http, &format!("pool.get_{field}"), json!([p.s, p.pool]))
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn query(socket: &Path) -> xha_control::LivesetReport {
    xha_control::client::request(
        socket,
        xha_control::Request::QueryLiveset,
        xha_control::client::REQUEST_TIMEOUT,
    )
    .expect("query-liveset")
    .result
    .expect("report")
}

/// What a check that fails must leave as it was.
fn snapshot(a: &Agent, p: &Pool) -> (Value, Value) {
    (
        call2(a.http, "pool.get_record", json!([p.s, p.pool])),
        call2(a.http, "VDI.get_all", json!([p.s])),
    )
}

#[test]
fn enable_survives_an_agent_kill_and_disable_brings_everything_back() {
    let a = agent();
    let p = pool(&a);
    let (sr, sr_dir) = file_sr(&a, &p, "sr1", true);
    call2(
        a.http,
        "pool.set_name_label",
        json!([p.s, p.pool, "before HA"]),
    );

    let started = Instant::now();
    call2(
        a.http,
        "pool.enable_ha",
        json!([p.s, [sr], {"timeout": "10"}]),
    );
    let _daemons = StopDaemons::new(a.dir.path().join("xhad"));
    eprintln!("pool.enable_ha took {:?}", started.elapsed());
    assert_eq!(pool_field(&a, &p, "ha_enabled"), json!(true));
    assert_eq!(
        pool_field(&a, &p, "ha_configuration"),
        json!({"timeout": "10"})
    );
    assert_eq!(pool_field(&a, &p, "ha_cluster_stack"), json!("xhad"));
    assert_eq!(pool_field(&a, &p, "ha_master"), json!(p.host));
    assert!(pool_field(&a, &p, "ha_master_epoch").as_i64().unwrap_or(0) > 0);
    let statefiles = pool_field(&a, &p, "ha_statefiles");
    assert_eq!(statefiles.as_array().map(Vec::len), Some(1), "{statefiles}");
    let vdi = statefiles[0].as_str().expect("vdi").to_owned();
    assert_eq!(
        call2(a.http, "VDI.get_type", json!([p.s, vdi])),
        json!("ha_statefile")
    );
    assert_eq!(
        call2(a.http, "host.get_ha_statefiles", json!([p.s, p.host])),
        statefiles
    );
    let metrics = call2(a.http, "host.get_metrics", json!([p.s, p.host]));
    assert_eq!(
        call2(a.http, "host_metrics.get_live", json!([p.s, metrics])),
        json!(true)
    );
    // The files: a statefile and the metadata volume on the SR; xhad's
    // configuration, secret and pidfiles; the local HA record.
    let on_sr = names_in(&sr_dir);
    assert!(
        on_sr.iter().any(|n| n.starts_with("ha-statefile-")),
        "{on_sr:?}"
    );
    assert!(
        on_sr.iter().any(|n| n.starts_with("ha-metadata-")),
        "{on_sr:?}"
    );
    let xhad_dir = a.dir.path().join("xhad");
    let xhad_pid = pid_in(&xhad_dir.join("xhad.pid")).expect("xhad pidfile");
    let supervisor_pid = pid_in(&xhad_dir.join("supervisor.pid")).expect("supervisor pidfile");
    assert!(alive(xhad_pid) && alive(supervisor_pid));
    let data = a.dir.path().join("data");
    assert!(data.join("ha-state.toml").exists());
    let report = query(&xhad_dir.join("control.sock"));
    assert_eq!(report.status, xha_control::Status::Online);
    assert!(report.fencing_armed);
    // HA_IS_ENABLED, and nothing changes.
    assert_eq!(
        fail2(a.http, "pool.enable_ha", json!([p.s, [sr], {}])),
        vec!["HA_IS_ENABLED"]
    );
    // A change after the move goes to the metadata volume.
    call2(
        a.http,
        "pool.set_name_label",
        json!([p.s, p.pool, "with HA"]),
    );
    let local_db = std::fs::metadata(data.join("pool-db"))
        .expect("local db")
        .modified()
        .ok();

    // kill -9 the agent: xhad keeps running, the agent finds it again and
    // the database (on the metadata volume) is intact.
    let a = a.kill9_and_restart();
    let p = pool(&a);
    assert_eq!(pool_field(&a, &p, "ha_enabled"), json!(true));
    assert_eq!(pool_field(&a, &p, "name_label"), json!("with HA"));
    assert!(alive(xhad_pid), "xhad died with the agent");
    assert!(alive(supervisor_pid), "xha-supervisor died with the agent");
    assert_eq!(
        std::fs::metadata(data.join("pool-db"))
            .expect("local db")
            .modified()
            .ok(),
        local_db,
        "the local file is not written while HA is on"
    );
    // The re-found daemon is followed again: a change it reports shows up.
    call2(
        a.http,
        "pool.set_name_label",
        json!([p.s, p.pool, "after restart"]),
    );

    let started = Instant::now();
    call2(a.http, "pool.disable_ha", json!([p.s]));
    eprintln!("pool.disable_ha took {:?}", started.elapsed());
    wait_gone(xhad_pid);
    wait_gone(supervisor_pid);
    assert_eq!(pool_field(&a, &p, "ha_enabled"), json!(false));
    assert_eq!(pool_field(&a, &p, "ha_statefiles"), json!([]));
    assert_eq!(call2(a.http, "VDI.get_all", json!([p.s])), json!([]));
    assert!(!data.join("ha-state.toml").exists());
    assert_eq!(
        names_in(&sr_dir),
        vec![".xapi-ha-sr"],
        "the HA files are removed"
    );
    assert_eq!(
        fail2(a.http, "pool.disable_ha", json!([p.s])),
        vec!["HA_NOT_ENABLED"]
    );
    // Nothing lost: the database is back on the local file.
    let (dir, code, _) = a.terminate();
    assert_eq!(code, Some(0));
    let a = Agent::restart(dir);
    let p = pool(&a);
    assert_eq!(pool_field(&a, &p, "name_label"), json!("after restart"));
    assert_eq!(pool_field(&a, &p, "ha_enabled"), json!(false));
}

#[test]
fn failed_checks_change_nothing() {
    let a = agent();
    let p = pool(&a);
    let (shared, _) = file_sr(&a, &p, "shared", true);
    let (local, _) = file_sr(&a, &p, "local", false);
    let (gone, gone_dir) = file_sr(&a, &p, "gone", true);
    std::fs::remove_dir_all(&gone_dir).expect("remove SR dir");
    let before = snapshot(&a, &p);
    let cases: Vec<(Value, Vec<String>)> = vec![
        (
            json!([p.s, [local], {}]),
            vec![
                "HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED".into(),
                local.clone(),
            ],
        ),
        (
            json!([p.s, [], {}]),
            vec!["CANNOT_CREATE_STATE_FILE".into()],
        ),
        (
            json!([p.s, [shared], {"timeout": "5"}]),
            vec![
                "INVALID_VALUE".into(),
                "configuration:timeout".into(),
                "5".into(),
            ],
        ),
        (
            json!([p.s, [shared], {"timeout": "3601"}]),
            vec![
                "INVALID_VALUE".into(),
                "configuration:timeout".into(),
                "3601".into(),
            ],
        ),
        (
            json!([p.s, [shared], {"timeuot": "10"}]),
            vec![
                "INVALID_VALUE".into(),
                "configuration:timeuot".into(),
                "10".into(),
            ],
        ),
        (
            json!([p.s, [gone], {}]),
            vec!["CANNOT_CREATE_STATE_FILE".into()],
        ),
    ];
    for (params, want) in cases {
        assert_eq!(
            fail2(a.http, "pool.enable_ha", params.clone()),
            want,
            "{params}"
        );
        assert_eq!(snapshot(&a, &p), before, "{params} changed the database");
        assert!(names_in(&a.dir.path().join("xhad")).is_empty(), "{params}");
    }
    assert_eq!(
        fail2(a.http, "pool.disable_ha", json!([p.s])),
        vec!["HA_NOT_ENABLED"]
    );
    assert_eq!(snapshot(&a, &p), before);
}

/// A daemon that cannot start, and one that exits before the liveset
/// forms: everything is rolled back and the named error reported.
#[test]
fn startup_failures_roll_back() {
    let (_, supervisor) = xha_bins();
    let scripts = tempfile::tempdir().expect("tempdir");
    // Passes `--check`, then exits 13 (cannot join the liveset) when run.
    let leaves = scripts.path().join("xhad-leaves");
    std::fs::write(
        &leaves,
        "#!/bin/sh\ncase \"$*\" in *--check*) exit 0;; esac\nexit 13\n",
    )
    .expect("script");
    std::fs::set_permissions(&leaves, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    for (xhad, want) in [
        (
            PathBuf::from("/nonexistent/xhad"),
            "HA_HEARTBEAT_DAEMON_STARTUP_FAILED",
        ),
        (leaves, "HA_FAILED_TO_FORM_LIVESET"),
    ] {
        let a = agent_with(&xhad, &supervisor);
        let p = pool(&a);
        let (sr, sr_dir) = file_sr(&a, &p, "sr", true);
        let before = snapshot(&a, &p);
        assert_eq!(
            fail2(
                a.http,
                "pool.enable_ha",
                json!([p.s, [sr], {"timeout": "10"}])
            ),
            vec![want],
            "{}",
            xhad.display()
        );
        assert_eq!(snapshot(&a, &p), before);
        assert_eq!(names_in(&sr_dir), vec![".xapi-ha-sr"]);
        let left = names_in(&a.dir.path().join("xhad"));
        assert!(
            left.iter().all(|n| n.ends_with(".log")),
            "only logs stay: {left:?}"
        );
        assert!(!a.dir.path().join("data/ha-state.toml").exists());
    }
}

/// The agent follows xhad through `watch`: the statefile is reformatted
/// under the pool (another generation), xhad treats it as lost, and the
/// database says so at once (`HA_STATEFILE_LOST`, no statefile access);
/// then HA is disabled all the same (through the network: the agent logs
/// "the statefile is not reachable: disabling HA through the network").
#[test]
fn a_lost_statefile_is_recorded_and_disable_still_works() {
    use sr_heartbeat::io::{BlockDevice, OpenMode};
    use sr_heartbeat::statefile::{MAX_HOSTS_LIMIT, Statefile};
    let a = agent();
    let p = pool(&a);
    let (sr, sr_dir) = file_sr(&a, &p, "sr", true);
    call2(
        a.http,
        "pool.enable_ha",
        json!([p.s, [sr], {"timeout": "10"}]),
    );
    let _daemons = StopDaemons::new(a.dir.path().join("xhad"));
    assert_eq!(call2(a.http, "message.get_all", json!([p.s])), json!([]));
    let statefile = names_in(&sr_dir)
        .into_iter()
        .find(|n| n.starts_with("ha-statefile-"))
        .map(|n| sr_dir.join(n))
        .expect("statefile");
    let dev = BlockDevice::open(&statefile, OpenMode::ReadWrite).expect("open statefile");
    let reformatted = Instant::now();
    Statefile::format(dev, uuid::Uuid::new_v4(), MAX_HOSTS_LIMIT).expect("reformat");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool_field(&a, &p, "ha_statefile_lost") != json!(true) {
        assert!(Instant::now() < deadline, "the loss was not recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "statefile loss recorded {:?} after the reformat",
        reformatted.elapsed()
    );
    let messages = call2(a.http, "message.get_all_records", json!([p.s]));
    let names: Vec<&str> = messages
        .as_object()
        .expect("records")
        .values()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, vec!["HA_STATEFILE_LOST"]);
    assert_eq!(
        call2(a.http, "host.get_ha_statefiles", json!([p.s, p.host])),
        json!([])
    );
    // Still live: nobody fences when every host lost the statefile.
    let metrics = call2(a.http, "host.get_metrics", json!([p.s, p.host]));
    assert_eq!(
        call2(a.http, "host_metrics.get_live", json!([p.s, metrics])),
        json!(true)
    );
    let xhad_pid = pid_in(&a.dir.path().join("xhad/xhad.pid")).expect("pid");
    call2(a.http, "pool.disable_ha", json!([p.s]));
    wait_gone(xhad_pid);
    assert_eq!(pool_field(&a, &p, "ha_enabled"), json!(false));
    assert_eq!(names_in(&sr_dir), vec![".xapi-ha-sr"]);
}

/// The agent dies after starting xhad but before the enable's commit point
/// (simulated: killed after the enable, its `ha-state.toml` removed): the
/// restarted agent has HA off, stops the leftover daemon and removes the
/// enable's files.
#[test]
fn an_interrupted_enable_is_cleaned_up_at_restart() {
    let a = agent();
    let p = pool(&a);
    let (sr, sr_dir) = file_sr(&a, &p, "sr", true);
    call2(
        a.http,
        "pool.enable_ha",
        json!([p.s, [sr], {"timeout": "10"}]),
    );
    let _daemons = StopDaemons::new(a.dir.path().join("xhad"));
    let xhad_pid = pid_in(&a.dir.path().join("xhad/xhad.pid")).expect("pid");
    let supervisor_pid = pid_in(&a.dir.path().join("xhad/supervisor.pid")).expect("pid");
    let state = a.dir.path().join("data/ha-state.toml");
    // Kill, then remove the commit point before the restart.
    let a = a.kill9_and_restart_with(|| std::fs::remove_file(&state).expect("remove state"));
    assert!(!state.exists());
    wait_gone(xhad_pid);
    wait_gone(supervisor_pid);
    let p = pool(&a);
    assert_eq!(pool_field(&a, &p, "ha_enabled"), json!(false));
    assert_eq!(names_in(&sr_dir), vec![".xapi-ha-sr"]);
    let left = names_in(&a.dir.path().join("xhad"));
    assert!(left.iter().all(|n| n.ends_with(".log")), "{left:?}");
    // And HA can be enabled again.
    call2(
        a.http,
        "pool.enable_ha",
        json!([p.s, [sr], {"timeout": "10"}]),
    );
    let _daemons_again = StopDaemons::new(a.dir.path().join("xhad"));
    call2(a.http, "pool.disable_ha", json!([p.s]));
}

/// blocksr: a loop device over a sparse image, detached on drop.
struct LoopDevice(PathBuf);

impl LoopDevice {
    fn attach(image: &Path) -> LoopDevice {
        let out = Command::new("losetup")
            .args(["--find", "--show", "--sector-size", "512"])
            .arg(image)
            .output()
            .expect("run losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        LoopDevice(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).output();
    }
}

/// blocksr: HA on a shared `type=block` SR (a loop device; root): the
/// statefile (4 MiB) and the metadata volume (256 MiB) are regions of the
/// device in its label's volume table, `xhad` opens its statefile as a
/// region (`{ path, offset, length }`, checked by `xhad --check` first),
/// the database lives in the metadata region across an agent SIGKILL, a
/// VM disk allocated meanwhile goes after them, and disable frees both
/// regions while the disk stays.
#[test]
fn enable_and_disable_on_a_block_sr_use_regions_of_its_device() {
    use sr_heartbeat::srlabel::VolumeKind;
    use sr_heartbeat::srlabel::device::read_label;
    use std::os::unix::fs::MetadataExt;
    if !std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        println!("skipped: needs root for losetup (HA on a block SR)");
        eprintln!("skipped: needs root for losetup (HA on a block SR)");
        return;
    }
    let images = tempfile::tempdir().expect("tempdir");
    let image = images.path().join("lun.img");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(320 << 20))
        .expect("image");
    let lun = LoopDevice::attach(&image);
    let a = agent();
    let p = pool(&a);
    let sr = call2(
        a.http,
        "SR.create",
        json!([p.s, p.host, {"device": lun.0.display().to_string()}, 0, "lun", "", "block", "", true, {}]),
    );
    call2(
        a.http,
        "pool.enable_ha",
        json!([p.s, [sr], {"timeout": "10"}]),
    );
    let _daemons = StopDaemons::new(a.dir.path().join("xhad"));
    assert_eq!(pool_field(&a, &p, "ha_enabled"), json!(true));
    let label = read_label(&lun.0).expect("label");
    let kinds: Vec<(VolumeKind, u64, u64)> = label
        .volumes
        .iter()
        .map(|v| (v.kind, v.offset, v.size))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (VolumeKind::Statefile, 1 << 20, 4 << 20),
            (VolumeKind::Metadata, 5 << 20, 256 << 20),
        ]
    );
    let config = std::fs::read_to_string(a.dir.path().join("xhad/xhad.toml")).expect("config");
    assert!(
        config.contains(&format!(
            "{{ path = \"{}\", offset = 1048576, length = 4194304 }}",
            lun.0.display()
        )),
        "{config}"
    );
    let statefile = pool_field(&a, &p, "ha_statefiles")[0]
        .as_str()
        .expect("vdi")
        .to_owned();
    let rec = call2(a.http, "VDI.get_record", json!([p.s, statefile]));
    assert_eq!(rec["sm_config"]["region_offset"], json!("1048576"));
    let report = query(&a.dir.path().join("xhad/control.sock"));
    assert_eq!(report.status, xha_control::Status::Online);

    // The database is in the metadata region: a change survives a SIGKILL.
    call2(
        a.http,
        "pool.set_name_label",
        json!([p.s, p.pool, "on the LUN"]),
    );
    let a = a.kill9_and_restart();
    let p = pool(&a);
    assert_eq!(pool_field(&a, &p, "name_label"), json!("on the LUN"));
    // A VM disk goes after the heartbeat regions.
    let disk = call2(
        a.http,
        "VDI.create",
        json!([p.s, {"SR": sr, "virtual_size": 1 << 20}]),
    );
    let rec = call2(a.http, "VDI.get_record", json!([p.s, disk]));
    assert_eq!(
        rec["sm_config"]["region_offset"],
        json!(((1u64 + 4 + 256) << 20).to_string())
    );

    call2(a.http, "pool.disable_ha", json!([p.s]));
    assert_eq!(pool_field(&a, &p, "ha_enabled"), json!(false));
    let label = read_label(&lun.0).expect("label");
    assert_eq!(label.volumes.len(), 1, "{label:?}");
    assert_eq!(label.volumes[0].kind, VolumeKind::Disk);
    assert_eq!(call2(a.http, "VDI.get_all", json!([p.s])), json!([disk]));
    assert!(lun.0.exists(), "the device is never removed");
    assert_eq!(pool_field(&a, &p, "name_label"), json!("on the LUN"));
}
