//! The sweeper as a separate process: which program to run, and what it cost.
//!
//! The embedded server lives in the bench process, so the sweeper runs in a child process
//! whose memory and CPU time are its own. While it runs, [`run_monitored`] polls
//! `/proc/<pid>/status` for `VmHWM` (the peak resident set, which only grows) and
//! `/proc/<pid>/stat` for its CPU time; once the child has exited but is not yet reaped
//! (a zombie), its final CPU time is still readable there.
//!
//! The program is the workspace's real `sweeper` binary, built next to the bench binary by
//! `cargo build [--release] -p bench -p sweeper-lambda --bin sweeper` (naming both
//! packages keeps cargo's feature unification the same as the bench's own build, so only
//! the binary itself is compiled and linked). In quick mode, or when that build fails, it
//! is the bench binary itself with the hidden subcommand `__sweeper`, which runs exactly
//! the code of the sweeper's `main` (see [`crate::sweeper_child`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Linux reports CPU time in clock ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;
const POLL: Duration = Duration::from_millis(5);

/// The program that sweeps.
#[derive(Debug, Clone)]
pub enum SweeperProgram {
    /// The workspace's `sweeper` binary.
    Binary(PathBuf),
    /// The bench binary's `__sweeper` subcommand (the same code, linked into the bench).
    BenchChild(PathBuf),
}

impl SweeperProgram {
    /// A command running it, before its arguments.
    pub fn command(&self) -> Command {
        match self {
            Self::Binary(path) => Command::new(path),
            Self::BenchChild(exe) => {
                let mut cmd = Command::new(exe);
                cmd.arg(crate::sweeper_child::SUBCOMMAND);
                cmd
            }
        }
    }

    /// How the report names it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Binary(_) => "sweeper binary",
            Self::BenchChild(_) => "bench __sweeper child",
        }
    }
}

/// The sweeper program for this run, found (and in full mode built) once.
pub fn sweeper_program(quick: bool) -> SweeperProgram {
    static PROGRAM: OnceLock<SweeperProgram> = OnceLock::new();
    PROGRAM.get_or_init(|| locate(quick)).clone()
}

fn locate(quick: bool) -> SweeperProgram {
    let exe = std::env::current_exe().expect("the bench binary's path");
    if quick {
        return SweeperProgram::BenchChild(exe);
    }
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build.current_dir(workspace_root()).args([
        "build",
        "-p",
        "bench",
        "-p",
        "sweeper-lambda",
        "--bin",
        "sweeper",
    ]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => {
            build.arg("--release");
        }
        Some("debug") => {}
        _ => return SweeperProgram::BenchChild(exe),
    }
    eprintln!("   building the sweeper binary: {build:?}");
    let built = build.stdout(Stdio::null()).status();
    let binary = dir.join("sweeper");
    match built {
        Ok(status) if status.success() && binary.exists() => SweeperProgram::Binary(binary),
        other => {
            eprintln!("   could not build the sweeper binary ({other:?}); using the bench child");
            SweeperProgram::BenchChild(exe)
        }
    }
}

/// The workspace root (two levels above the bench crate, `tests/bench/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The cargo target directory the bench binary lives in (`target/` for `target/release/bench`).
pub fn target_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

/// What a finished child did and cost.
#[derive(Debug)]
pub struct ChildRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Spawn to exit.
    pub wall: Duration,
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// User + system CPU time.
    pub cpu: Duration,
}

impl ChildRun {
    /// Peak RSS in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }

    /// Fails with the child's output unless it exited successfully.
    pub fn ensure_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `cmd` to completion, polling its peak RSS and CPU time. Blocking: call it from
/// `spawn_blocking`.
pub fn run_monitored(mut cmd: Command) -> std::io::Result<ChildRun> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut peak_rss_kib = 0;
    let mut cpu = Duration::ZERO;
    let mut wall = Duration::ZERO;
    loop {
        if let Some(kib) = read_vm_hwm(pid) {
            peak_rss_kib = peak_rss_kib.max(kib);
        }
        match read_stat(&format!("/proc/{pid}/stat")) {
            Some(stat) => {
                cpu = stat.cpu;
                if stat.state == 'Z' {
                    wall = started.elapsed();
                    break;
                }
            }
            None => break, // already reaped: cannot happen, we are its only waiter
        }
        std::thread::sleep(POLL);
    }
    let status = child.wait()?;
    if wall.is_zero() {
        wall = started.elapsed();
    }
    Ok(ChildRun {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        wall,
        peak_rss_kib,
        cpu,
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// `VmHWM` of `pid`, KiB (absent once the process has exited).
fn read_vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's state letter and CPU time from a `/proc/.../stat` file.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub state: char,
    pub cpu: Duration,
}

/// Reads `path` (`/proc/<pid>/stat` or `/proc/self/stat`).
pub fn read_stat(path: &str) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) may hold spaces: fields resume after its last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Fields 14 (utime) and 15 (stime), counted from 1 with state as field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let cpu = Duration::from_secs_f64((utime + stime) as f64 / TICKS_PER_SECOND);
    Some(Stat { state, cpu })
}

/// CPU time used so far by this process, split between the embedded server's threads
/// (named `dynoxide…`) and everything else (the bench's own runtime, and threads that have
/// exited).
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnCpu {
    pub server: Duration,
    pub bench: Duration,
}

impl OwnCpu {
    /// Reads it now.
    pub fn now() -> Self {
        let total = read_stat("/proc/self/stat").map_or(Duration::ZERO, |s| s.cpu);
        let mut server = Duration::ZERO;
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let path = task.path();
                let is_server = std::fs::read_to_string(path.join("comm"))
                    .is_ok_and(|name| name.starts_with("dynoxide"));
                if is_server && let Some(stat) = read_stat(&path.join("stat").to_string_lossy()) {
                    server += stat.cpu;
                }
            }
        }
        Self {
            server,
            bench: total.saturating_sub(server),
        }
    }

    /// CPU used since `earlier`.
    pub fn since(earlier: Self) -> Self {
        let now = Self::now();
        Self {
            server: now.server.saturating_sub(earlier.server),
            bench: now.bench.saturating_sub(earlier.bench),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_parsed_after_the_command_name() {
        let line = "4242 (tokio (rt) x) Z 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 75 0 0 20 0 9 0 123 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, 'Z');
        assert_eq!(stat.cpu, Duration::from_millis(3250));
        assert!(read_stat("/proc/self/stat").is_some());
    }
}
