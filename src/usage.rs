//! Process resource usage, for summaries and benchmarks.

/// CPU seconds (user + system) this process has used so far, all threads.
pub fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Peak resident memory of this process, MiB.
pub fn peak_rss_mib() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

/// Resident memory of this process now, bytes.
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64
}

/// One `/proc/.../stat` line: the name, and the numeric fields by their number in proc(5).
struct Stat<'a> {
    name: &'a str,
    /// The fields after the name, from field 3 (the state) on.
    rest: Vec<&'a str>,
}

impl<'a> Stat<'a> {
    /// "pid (name) state ..." where the name may hold spaces and parentheses.
    fn parse(stat: &'a str) -> Option<Self> {
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        Some(Self { name: &stat[open + 1..close], rest: stat[close + 1..].split_whitespace().collect() })
    }

    /// Field `n` of proc(5) (1-based), as a number; 0 when absent.
    fn field(&self, n: usize) -> f64 {
        self.rest.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    }

    /// utime + stime, in clock ticks.
    fn cpu_ticks(&self) -> f64 {
        self.field(14) + self.field(15)
    }
}

/// Clock ticks per second, the unit of CPU times in `stat`.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// CPU seconds used by this process's live threads, summed by thread name. Threads
/// inherit their creator's name, so naming a job's threads after the job (FFmpeg's
/// workers included) gives that job's CPU.
pub(crate) fn cpu_seconds_by_thread_name() -> std::collections::HashMap<String, f64> {
    let mut by_name = std::collections::HashMap::new();
    let ticks = ticks_per_second();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return by_name };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let Some(stat) = Stat::parse(&text) else { continue };
        *by_name.entry(stat.name.to_string()).or_insert(0.0) += stat.cpu_ticks() / ticks;
    }
    by_name
}

/// What a tree of child processes uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TreeUsage {
    /// CPU seconds (user + system) of the live processes, plus what their reaped children used.
    pub cpu_seconds: f64,
    /// Resident memory of the live processes, bytes (shared pages count in each).
    pub rss_bytes: u64,
}

/// A snapshot of every process's parent, CPU and memory, from /proc. A browser job's
/// Chromium, Xvfb and PulseAudio are other processes, so the job's threads miss them.
pub(crate) struct ProcessTable {
    procs: std::collections::HashMap<u32, (f64, u64)>,
    children: std::collections::HashMap<u32, Vec<u32>>,
}

impl ProcessTable {
    pub(crate) fn read() -> Self {
        let ticks = ticks_per_second();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
        let mut procs = std::collections::HashMap::new();
        let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(text) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            let Some(stat) = Stat::parse(&text) else { continue };
            // Its own CPU, and cutime + cstime: what its reaped children used.
            let cpu = (stat.cpu_ticks() + stat.field(16) + stat.field(17)) / ticks;
            procs.insert(pid, (cpu, stat.field(24) as u64 * page));
            children.entry(stat.field(4) as u32).or_default().push(pid);
        }
        Self { procs, children }
    }

    /// CPU and memory of the processes `roots` and all their descendants.
    pub(crate) fn usage(&self, roots: &[u32]) -> TreeUsage {
        let mut usage = TreeUsage::default();
        let mut seen = std::collections::HashSet::new();
        let mut todo: Vec<u32> = roots.to_vec();
        while let Some(pid) = todo.pop() {
            let Some((cpu, rss)) = self.procs.get(&pid) else { continue };
            if !seen.insert(pid) {
                continue;
            }
            usage.cpu_seconds += cpu;
            usage.rss_bytes += rss;
            todo.extend(self.children.get(&pid).into_iter().flatten());
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_tree_counts_its_descendants_cpu_and_memory() {
        // A shell that burns CPU in a child of its own.
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done' & wait; exec sleep 5"])
            .spawn()
            .unwrap();
        let mut used = TreeUsage::default();
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            used = ProcessTable::read().usage(&[sh.id()]);
            if used.cpu_seconds >= 0.1 {
                break;
            }
        }
        let _ = sh.kill();
        let _ = sh.wait();
        assert!(used.cpu_seconds >= 0.1, "{used:?}");
        assert!(used.rss_bytes > 0, "{used:?}");
        assert_eq!(ProcessTable::read().usage(&[u32::MAX]), TreeUsage::default());
    }
}
