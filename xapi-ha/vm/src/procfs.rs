//! What /proc says about a process: its start time (the identity that tells
//! a reused pid apart), state, memory and CPU.

use std::fs;

/// Fields of /proc/PID/stat the drivers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: R, S, D, T (stopped), Z (zombie), ...
    pub state: char,
    /// Field 5.
    pub pgrp: i32,
    /// Fields 14 + 15, clock ticks.
    pub cpu_ticks: u64,
    /// Field 22: start time after boot, clock ticks. (pid, start) names one process.
    pub start_ticks: u64,
}

/// Parses the text of /proc/PID/stat.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    // comm (field 2) is in parentheses and may hold spaces or ')': fields
    // after it start behind the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3.
    let field = |n: usize| f.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        pgrp: field(5)?.parse().ok()?,
        cpu_ticks: field(14)?.parse::<u64>().ok()? + field(15)?.parse::<u64>().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// /proc/PID/stat of a live process, or None when there is no such process.
pub fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// True when `pid` is the process that started at `start_ticks` and has not
/// exited (a zombie has exited).
pub fn is_same_live(pid: i32, start_ticks: u64) -> bool {
    matches!(stat(pid), Some(s) if s.start_ticks == start_ticks && s.state != 'Z' && s.state != 'X')
}

/// Resident memory of `pid`, bytes (VmRSS).
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_comm_with_spaces_and_parens() {
        let line = "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 987654 1000 100 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            ProcStat {
                state: 'S',
                pgrp: 1234,
                cpu_ticks: 10,
                start_ticks: 987654
            }
        );
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(is_same_live(me, s.start_ticks));
        assert!(!is_same_live(me, s.start_ticks + 1));
        assert!(rss_bytes(me).unwrap() > 0);
    }
}
