//! A lab whose hosts each reach one backing statefile through their own
//! `faultfs` mount, so one host's storage path can fail, hang or slow down
//! while the others still reach the file (`tests/tests/e2e_storage.rs`,
//! `e2e_replay.rs`).

use std::path::{Path, PathBuf};

use uuid::Uuid;
use xha_lab::{Lab, setup};

use crate::e2e::{spec, start_online};
use crate::faultfs::FaultFs;

/// The lab, its mounts and their directory. Field order matters: the lab
/// drops (stops its daemons) before the mounts go.
pub struct StorageLab {
    pub lab: Lab,
    pub mounts: Vec<FaultFs>,
    /// The shared statefile behind every mount.
    pub backing: PathBuf,
    _dir: tempfile::TempDir,
}

impl StorageLab {
    /// Start `hosts` real daemons at base timeout `t`, each on its own
    /// mount of one formatted statefile, and wait until all are online.
    /// `faultfs_bin` is the `faultfs` binary (`env!("CARGO_BIN_EXE_faultfs")`
    /// in a test). Returns the lab and the master's index.
    ///
    /// # Panics
    /// On any set-up failure (a test precondition).
    #[must_use]
    pub fn start(hosts: usize, t: u64, faultfs_bin: &Path) -> (StorageLab, usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let generation = Uuid::new_v4();
        let backing = dir.path().join("statefile");
        setup::format_statefile(&backing, generation, hosts).expect("format the statefile");
        let mut mounts = Vec::new();
        let mut s = spec(hosts, t);
        s.generation = Some(generation);
        for i in 0..hosts {
            let mnt = dir.path().join(format!("mnt-{i}"));
            std::fs::create_dir(&mnt).expect("mount dir");
            let fs = FaultFs::mount(faultfs_bin, &backing, &mnt).expect("mount faultfs");
            s.host(i).statefile = Some(fs.path().to_path_buf());
            mounts.push(fs);
        }
        let (lab, master) = start_online(s);
        (
            StorageLab {
                lab,
                mounts,
                backing,
                _dir: dir,
            },
            master,
        )
    }

    /// Stop the lab cleanly (asserted), then unmount.
    ///
    /// # Panics
    /// When the lab does not stop cleanly.
    pub fn stop(self) {
        let StorageLab {
            lab, mounts, _dir, ..
        } = self;
        lab.stop().expect("clean stop");
        drop(mounts);
    }
}
