//! `faultfs` directory mounts: two hosts' views ("A" and "B") of one shared
//! `file` SR directory. What one view creates, sizes, writes (O_DIRECT, as
//! the daemons and VMs do), renames and removes, the other sees at once;
//! a fault on A fails or holds A's I/O only.
//!
//! Needs root (or fusermount3) and /dev/fuse; prints why and passes otherwise.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ha_tests::faultfs::{FaultFs, Mode, fuse_available};
use sr_heartbeat::io::{AlignedBuf, BlockDevice, OpenMode};

const BIN: &str = env!("CARGO_BIN_EXE_faultfs");
const MIB: u64 = 1 << 20;

/// Two views of one directory; fields drop in order, views first.
struct Rig {
    a: FaultFs,
    b: FaultFs,
    dir: tempfile::TempDir,
}

impl Rig {
    fn backing(&self) -> std::path::PathBuf {
        self.dir.path().join("sr")
    }
}

fn rig(test: &str) -> Option<Rig> {
    if let Err(why) = fuse_available() {
        println!("skipping {test}: {why}");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = dir.path().join("sr");
    std::fs::create_dir(&backing).expect("backing dir");
    let view = |name: &str| {
        let at = dir.path().join(name);
        std::fs::create_dir(&at).expect("view dir");
        FaultFs::mount_dir(Path::new(BIN), &backing, &at).expect("faultfs mount")
    };
    let (a, b) = (view("a"), view("b"));
    Some(Rig { a, b, dir })
}

fn block(data: u8) -> AlignedBuf {
    AlignedBuf::from_bytes(&[data; 4096]).expect("buffer")
}

fn read_block(path: &Path, offset: u64) -> Vec<u8> {
    let dev = BlockDevice::open(path, OpenMode::ReadOnly).expect("open O_DIRECT");
    let mut buf = AlignedBuf::new(4096).expect("buffer");
    dev.read_at(offset, &mut buf).expect("read");
    buf.to_vec()
}

#[test]
fn faultfs_dir_views_share_one_directory() {
    let Some(rig) = rig("faultfs_dir_views_share_one_directory") else {
        return;
    };
    let (a, b) = (rig.a.path(), rig.b.path());
    // A VDI as VDI.create makes it: O_EXCL, sized, synced with the directory.
    let img = a.join("vdi.img");
    let f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&img)
        .expect("create through A");
    f.set_len(MIB).expect("size");
    f.sync_all().expect("fsync");
    std::fs::File::open(a)
        .and_then(|d| d.sync_all())
        .expect("fsyncdir");
    assert_eq!(
        std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&img)
            .expect_err("O_EXCL again")
            .kind(),
        std::io::ErrorKind::AlreadyExists
    );
    // O_DIRECT through A, read through B and in the backing directory.
    let dev = BlockDevice::open(&img, OpenMode::ReadWrite).expect("open O_DIRECT through A");
    dev.write_at(8192, &block(7)).expect("write through A");
    assert_eq!(
        std::fs::metadata(b.join("vdi.img"))
            .expect("stat through B")
            .len(),
        MIB
    );
    assert_eq!(read_block(&b.join("vdi.img"), 8192), vec![7; 4096]);
    assert_eq!(
        read_block(&rig.backing().join("vdi.img"), 8192),
        vec![7; 4096]
    );
    // A label as SR.create writes it: a temporary file renamed into place.
    let mut tmp = std::fs::File::create(b.join(".label.tmp")).expect("create through B");
    tmp.write_all(b"sr-uuid\n").expect("write");
    tmp.sync_all().expect("fsync");
    std::fs::rename(b.join(".label.tmp"), b.join(".label")).expect("rename through B");
    let mut text = String::new();
    std::fs::File::open(a.join(".label"))
        .and_then(|mut f| f.read_to_string(&mut text))
        .expect("read through A");
    assert_eq!(text, "sr-uuid\n");
    let mut names: Vec<String> = std::fs::read_dir(a)
        .expect("list A")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".label", "vdi.img"]);
    // Removed through B: gone everywhere, A's open file still works.
    std::fs::remove_file(b.join("vdi.img")).expect("unlink through B");
    assert!(!img.exists() && !rig.backing().join("vdi.img").exists());
    dev.write_at(0, &block(1))
        .expect("an open file outlives its name");
    let stats = rig.a.stats().expect("stats");
    assert_eq!((stats.errors, stats.held), (0, 0), "{stats:?}");
    assert!(stats.writes >= 2 && stats.fsyncs >= 2, "{stats:?}");
}

#[test]
fn faultfs_dir_faults_hit_one_view_only() {
    let Some(rig) = rig("faultfs_dir_faults_hit_one_view_only") else {
        return;
    };
    let (a, b) = (rig.a.path(), rig.b.path());
    std::fs::File::create(a.join("disk.img"))
        .and_then(|f| f.set_len(MIB))
        .expect("create");
    let on_a = BlockDevice::open(&a.join("disk.img"), OpenMode::ReadWrite).expect("open A");
    let on_b = BlockDevice::open(&b.join("disk.img"), OpenMode::ReadWrite).expect("open B");

    rig.a.set_mode(Mode::Error).expect("mode error");
    let e = on_a.write_at(0, &block(1)).expect_err("A fails");
    assert!(e.to_string().contains("Input/output error"), "{e}");
    on_b.write_at(0, &block(2)).expect("B writes");
    assert_eq!(read_block(&b.join("disk.img"), 0), vec![2; 4096]);

    rig.a.set_mode(Mode::Hang).expect("mode hang");
    let writer =
        std::thread::spawn(move || on_a.write_at(4096, &block(3)).map_err(|e| e.to_string()));
    let until = Instant::now() + Duration::from_secs(10);
    while rig.a.stats().expect("stats").held == 0 {
        assert!(Instant::now() < until, "the write was not held");
        std::thread::sleep(Duration::from_millis(20));
    }
    on_b.write_at(8192, &block(4)).expect("B is not held");
    assert_eq!(
        read_block(&rig.backing().join("disk.img"), 4096),
        vec![0; 4096]
    );
    rig.a.set_mode(Mode::Ok).expect("mode ok");
    writer
        .join()
        .expect("writer")
        .expect("the held write lands once released");
    assert_eq!(
        read_block(&rig.backing().join("disk.img"), 4096),
        vec![3; 4096]
    );
}
