//! Gauges read at each scrape instead of being counted: the build, and the
//! process's resident memory, start time and cgroup memory limit (Linux
//! `/proc` and `/sys/fs/cgroup`), so that an alert can compare memory with
//! its limit and count restarts. A value that cannot be read here (another
//! OS, no limit) is left out rather than reported as zero.

use std::fmt::Write;

/// Appends the sample of a [`super::Kind::Scraped`] metric, when it can be read.
pub fn render(name: &str, out: &mut String) {
    let value = match name {
        "shopflow_build_info" => {
            let _ = writeln!(out, "{name}{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
            return;
        }
        "process_resident_memory_bytes" => resident_bytes(),
        "process_start_time_seconds" => start_time_seconds(),
        "shopflow_memory_limit_bytes" => memory_limit_bytes(),
        _ => None,
    };
    if let Some(v) = value {
        let _ = writeln!(out, "{name} {v}");
    }
}

/// `VmRSS` of `/proc/self/status` (in kB there).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Boot time (`btime` of `/proc/stat`) plus the process's start after boot
/// (field 22 of `/proc/self/stat`, in clock ticks). Linux reports ticks to
/// userspace in USER_HZ, which is 100 on the architectures shopflow targets.
fn start_time_seconds() -> Option<u64> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces: count after its ')'.
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / USER_HZ)
}

/// `memory.max` (cgroup v2) or `memory.limit_in_bytes` (v1) of the cgroup
/// the process sees at `/sys/fs/cgroup` (its own inside a container). "max",
/// and v1's page-rounded "unlimited", mean no limit.
fn memory_limit_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .ok()?;
    let limit: u64 = text.trim().parse().ok()?;
    (limit < (1u64 << 60)).then_some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let mut out = String::new();
        render("shopflow_build_info", &mut out);
        assert_eq!(
            out,
            format!(
                "shopflow_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().is_some_and(|b| b > 1 << 20));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let started = start_time_seconds().expect("start time");
            assert!(
                started <= now + 1 && now.saturating_sub(started) < 3600,
                "started {started}, now {now}"
            );
        }
    }
}
