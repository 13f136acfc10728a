//! Steps on the host that every part of a lab uses: whether labs can run, the documentation
//! address check, running commands, writing files, reading a process's memory and `ip monitor`
//! stamps, and bounded waits.

use std::{
    net::IpAddr,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use super::error::LabError;

/// Whether labs can run here; `Err` with the reason when not (not root, no `ip`, no netns).
pub fn can_run() -> Result<(), LabError> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| LabError::Skip(format!("cannot run `id -u`: {e}")))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err(LabError::Skip(
            "network-namespace labs need root (run the tests as root)".into(),
        ));
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(LabError::Skip(format!(
            "`ip netns list` fails: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => Err(LabError::Skip(format!("`ip` (iproute2) is not installed: {e}"))),
    }
}

/// Fails unless `ip` (an address, or an address/prefix) lies in a documentation range.
pub fn assert_documentation_address(ip: &str) -> Result<(), LabError> {
    let addr = ip.split('/').next().unwrap_or(ip);
    let parsed: IpAddr = addr
        .parse()
        .map_err(|_| LabError::NotDocumentation(ip.to_owned()))?;
    let ok = match parsed {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            matches!((o[0], o[1], o[2]), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // 2001:db8::/32, and the link-local and multicast scopes the kernel uses on a link.
            (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xff00) == 0xff00
        }
    };
    if ok {
        Ok(())
    } else {
        Err(LabError::NotDocumentation(ip.to_owned()))
    }
}

/// Runs a command and returns its stdout; a non-zero exit is an error with stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    let output = output(program, args)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Runs a command and returns its whole output, whatever the exit status.
pub fn output(program: &str, args: &[&str]) -> Result<Output, LabError> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: format!("{program} {}", args.join(" ")),
            source,
        })
}

/// Writes `body` to `dir/rel` atomically (a hidden temporary file renamed over it), creating the
/// directories: a `dir:` source polling the tree never reads half a file.
pub fn write_file(dir: &Path, rel: &str, body: &str) -> Result<(), LabError> {
    let path = dir.join(rel);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LabError::Io { path, source }
    };
    let parent = path.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// The resident set size of process `pid` in KiB (`VmRSS`), if it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A stamp `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC (as `ip -ts monitor` prints it with `TZ=UTC`) as
/// time since the Unix epoch; `None` when it is not one.
pub fn utc_stamp(stamp: &str) -> Option<Duration> {
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.')?;
    if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = fraction.parse::<u64>().ok()? * 10_u64.pow(9 - fraction.len() as u32);
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (parts.next()??, parts.next()??, parts.next()??);
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(Duration::from_secs(days * 86_400 + hh * 3600 + mm * 60 + ss) + Duration::from_nanos(nanos))
}

/// Polls `probe` every `every` until it returns `Some`, for at most `timeout`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, LabError> {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(last) if start.elapsed() >= timeout => {
                return Err(LabError::Timeout {
                    what: what.to_owned(),
                    after: timeout,
                    last,
                });
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}
