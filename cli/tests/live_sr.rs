//! `xe sr-create type=block` against the real agent: the device gets the
//! SR label (read back from the device's first sectors and decoded with
//! `sr_heartbeat::srlabel`), someone else's data is refused (exit 6,
//! `SR_DEVICE_IN_USE`, naming what it holds) unless `--force`, on a plain
//! file used as the device and on a real loop device (root only; skipped
//! with the reason printed otherwise).

mod live_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use live_support::Agent;
use sr_heartbeat::srlabel::{Content, classify};

/// The label the device holds now, by its SR uuid.
fn label_on(device: &Path) -> Content {
    use std::io::Read as _;
    let mut first = vec![0u8; 128 << 10];
    std::fs::File::open(device)
        .and_then(|mut f| f.read_exact(&mut first))
        .expect("read the device's first sectors");
    classify(&first)
}

fn sr_create(agent: &Agent, device: &Path, extra: &[&str]) -> live_support::Out {
    let device = format!("device-config:device={}", device.display());
    let mut args = vec![
        "sr-create",
        "name-label=lun",
        "type=block",
        "shared=true",
        "content-type=ha",
        &device,
    ];
    args.extend_from_slice(extra);
    agent.xe(&args)
}

/// Creates SRs on `device` (zeroed, `len` bytes) and on it again after
/// writing a foreign signature into it.
fn exercise(agent: &Agent, device: &Path) {
    let uuid = sr_create(agent, device, &[]).ok().trim().to_owned();
    match label_on(device) {
        Content::Label(l) => {
            assert_eq!(l.sr_uuid.to_string(), uuid);
            assert!(l.volumes.is_empty());
        }
        other => panic!("no label on {}: {other:?}", device.display()),
    }
    let ty = agent
        .xe(&["sr-param-get", &format!("uuid={uuid}"), "param-name=type"])
        .ok();
    assert_eq!(ty.trim(), "block");
    let shared = agent
        .xe(&["sr-param-get", &format!("uuid={uuid}"), "param-name=shared"])
        .ok();
    assert_eq!(shared.trim(), "true");
    // `force` is not stored with the SR.
    let config = agent
        .xe(&[
            "sr-param-get",
            &format!("uuid={uuid}"),
            "param-name=device-config",
        ])
        .ok();
    assert!(!config.contains("force"), "{config}");

    // An ext4 superblock magic: someone else's data.
    write_at(device, 1080, &[0x53, 0xef]);
    // Our label is gone from slot 1, and slot 0 was zero: foreign.
    write_at(device, 4096, &[0xff; 8]);
    let out = sr_create(agent, device, &[]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("in use"), "{out:?}");
    assert!(out.stderr.contains("an ext2/3/4 filesystem"), "{out:?}");
    let forced = sr_create(agent, device, &["--force"]).ok();
    match label_on(device) {
        Content::Label(l) => assert_eq!(l.sr_uuid.to_string(), forced.trim()),
        other => panic!("no label after --force: {other:?}"),
    }
    // Refused creates left no record: two SRs of type block.
    let all = agent.xe(&["sr-list", "type=block", "--minimal"]).ok();
    assert_eq!(all.trim().split(',').count(), 2, "{all}");
}

fn write_at(device: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .expect("open the device");
    f.write_all_at(bytes, offset).expect("write");
    f.sync_all().expect("sync");
}

#[test]
fn block_sr_on_a_plain_file() {
    let agent = Agent::start();
    let device = agent.dir.path().join("lun.img");
    std::fs::File::create(&device)
        .and_then(|f| f.set_len(64 << 20))
        .expect("make the file");
    exercise(&agent, &device);
    // Too small: refused by the agent, no record.
    let small = agent.dir.path().join("small.img");
    std::fs::File::create(&small)
        .and_then(|f| f.set_len(1 << 20))
        .expect("make the file");
    let out = sr_create(&agent, &small, &[]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("SR_DEVICE_TOO_SMALL"), "{out:?}");
}

/// A loop device, detached on drop.
struct Loop(PathBuf);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

#[test]
fn block_sr_on_a_loop_device() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("skipped: attaching a loop device needs root");
        return;
    }
    let agent = Agent::start();
    let backing = agent.dir.path().join("loop-backing.img");
    std::fs::File::create(&backing)
        .and_then(|f| f.set_len(64 << 20))
        .expect("make the backing file");
    let out = match Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&backing)
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "skipped: losetup could not attach a loop device: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("skipped: losetup cannot run: {e}");
            return;
        }
    };
    let device = Loop(PathBuf::from(
        String::from_utf8(out.stdout).expect("utf-8").trim(),
    ));
    assert!(
        std::fs::metadata(&device.0)
            .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
            .unwrap_or(false),
        "{} is not a block device",
        device.0.display()
    );
    exercise(&agent, &device.0);
}
