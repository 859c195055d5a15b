//! A read-only look at a device that reports every problem it finds rather
//! than stopping at the first: what `sr-heartbeat dump` and `check` show.

use std::path::PathBuf;

use super::file::StatefileRead;
use super::header::{HEADER_SIZE, Header, HeaderError, STATEFILE_SIZE};
use super::slot::SlotError;
use crate::io::{BlockIo, IoError};

/// Everything read from a device that may hold a statefile.
#[derive(Clone, Debug)]
pub struct Inspection {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub device_sector_size: usize,
    pub header: Result<Header, HeaderError>,
    /// The pool block and slots, when the header was valid enough to say
    /// where they are.
    pub read: Option<StatefileRead>,
}

/// Read the header and, if it is valid, the pool block and all slots (one
/// I/O each). Refuses a device smaller than a statefile.
pub fn inspect(dev: &impl BlockIo) -> Result<Inspection, IoError> {
    if dev.size_bytes() < STATEFILE_SIZE {
        return Err(IoError::TooSmall {
            path: dev.path().to_owned(),
            need: STATEFILE_SIZE,
            have: dev.size_bytes(),
        });
    }
    let buf = dev.read(0, HEADER_SIZE)?;
    let header = Header::decode(&buf);
    let read = match &header {
        Ok(h) => {
            let (offset, len) = h.read_all_range();
            let body = dev.read(offset, len)?;
            Some(StatefileRead::decode(&body, h.generation, h.max_hosts))
        }
        Err(_) => None,
    };
    Ok(Inspection {
        path: dev.path().to_owned(),
        size_bytes: dev.size_bytes(),
        device_sector_size: dev.sector_size(),
        header,
        read,
    })
}

impl Inspection {
    /// `(header, device)` sector sizes when they differ.
    pub fn sector_mismatch(&self) -> Option<(u32, usize)> {
        match &self.header {
            Ok(h) if h.sector_size as usize != self.device_sector_size => {
                Some((h.sector_size, self.device_sector_size))
            }
            _ => None,
        }
    }

    /// Every problem, one line each; empty for a healthy statefile. A slot
    /// that was never written is normal (a host that has not joined) and is
    /// not a problem.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = &self.header {
            out.push(format!("header: {e}"));
        }
        if let Some((header, device)) = self.sector_mismatch() {
            out.push(format!(
                "header: formatted with {header}-byte sectors, device has {device}-byte sectors"
            ));
        }
        let Some(read) = &self.read else {
            return out;
        };
        if let Err(e) = &read.pool {
            out.push(format!("pool block: {e}"));
        }
        let mut owners: Vec<(uuid::Uuid, usize)> = Vec::new();
        for (index, slot) in read.slots.iter().enumerate() {
            match slot {
                Ok(s) => {
                    if let Some((_, first)) = owners.iter().find(|(u, _)| *u == s.host_uuid) {
                        out.push(format!(
                            "slot {index}: host {} already owns slot {first}",
                            s.host_uuid
                        ));
                    } else {
                        owners.push((s.host_uuid, index));
                    }
                }
                Err(SlotError::NeverWritten) => {}
                Err(e) => out.push(format!("slot {index}: {e}")),
            }
        }
        out
    }
}
