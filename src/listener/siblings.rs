//! Exit hints: the listener watches its sibling processes (the other children of its
//! supervisord, i.e. the programs) through pidfds and tells the daemon the moment one exits.
//!
//! supervisord 4.3 often reaps a crashed child up to 1 s late (SIGCHLD does not cut its 1 s poll
//! short, and the wake-up from the closed pipes races the zombie) and dispatches the event only on
//! its next wake-up, so an EXITED event can come about 2 s after the crash. A pidfd becomes
//! readable when the process exits, zombie or not, so the hint comes at once and without polling;
//! the daemon then asks supervisord, which wakes it. Siblings are found by scanning `/proc` for
//! processes whose parent is the listener's, at start and on every STARTING or RUNNING event.
//! Without pidfds (`ENOSYS`, kernels before 5.3) it says so once and does without.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::inbox::Notice;
use super::link::Link;

/// What the watcher is asked to do.
#[derive(Clone, Copy, Debug)]
pub enum Watch {
    /// Scan `/proc` for new siblings.
    Rescan,
    /// Watch this pid (a program supervisord just reported RUNNING), and rescan.
    Pid(u32),
}

/// The handle of a running watcher; dropping it stops the watcher.
#[derive(Debug)]
pub struct Watcher {
    sender: mpsc::UnboundedSender<Watch>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Starts watching the siblings of this process under `/proc`, sending each exit to the inbox
    /// at `socket` as [`Notice::Exited`] of `supervisor`.
    pub fn spawn(supervisor: &str, socket: &Path) -> Watcher {
        let (sender, receiver) = mpsc::unbounded_channel();
        let parent = rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get() as u32);
        let own = std::process::id();
        let state = State {
            proc_dir: PathBuf::from("/proc"),
            parent,
            own,
            supervisor: supervisor.to_string(),
            link: Link::new(socket),
            watched: HashSet::new(),
            waits: JoinSet::new(),
            unsupported: false,
        };
        let task = tokio::spawn(state.run(receiver));
        let _ = sender.send(Watch::Rescan);
        Watcher { sender, task }
    }

    /// Asks for `watch`; never waits.
    pub fn ask(&self, watch: Watch) {
        let _ = self.sender.send(watch);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    proc_dir: PathBuf,
    parent: u32,
    own: u32,
    supervisor: String,
    link: Link,
    watched: HashSet<u32>,
    waits: JoinSet<u32>,
    unsupported: bool,
}

impl State {
    async fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Watch>) {
        loop {
            tokio::select! {
                asked = receiver.recv() => match asked {
                    Some(Watch::Rescan) => self.rescan(),
                    Some(Watch::Pid(pid)) => {
                        self.watch(pid);
                        self.rescan();
                    }
                    None => return,
                },
                Some(exited) = self.waits.join_next(), if !self.waits.is_empty() => {
                    let Ok(pid) = exited else { continue };
                    self.watched.remove(&pid);
                    tracing::debug!("sibling process {pid} exited: telling the daemon");
                    let hint = Notice::Exited { supervisor: self.supervisor.clone(), pid };
                    if !self.link.send(&hint).await {
                        tracing::debug!("the exit hint for pid {pid} could not be sent");
                    }
                }
            }
        }
    }

    fn rescan(&mut self) {
        if self.unsupported || self.parent <= 1 {
            return;
        }
        for pid in children(&self.proc_dir, self.parent, self.own) {
            self.watch(pid);
        }
    }

    fn watch(&mut self, pid: u32) {
        if self.unsupported || pid == self.own || self.watched.contains(&pid) {
            return;
        }
        let Some(raw) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => {
                self.watched.insert(pid);
                self.waits.spawn(wait_for_exit(pid, fd));
            }
            Err(rustix::io::Errno::NOSYS) => {
                tracing::warn!(
                    "pidfd_open is not supported by this kernel: exits are known only when \
                     supervisord reports them"
                );
                self.unsupported = true;
            }
            // ESRCH: gone already (supervisord reports it); EPERM and the like: not ours to watch.
            Err(e) => tracing::debug!("cannot watch pid {pid}: {e}"),
        }
    }
}

/// Waits until the pidfd `fd` of `pid` is readable (the process exited) and returns `pid`.
async fn wait_for_exit(pid: u32, fd: OwnedFd) -> u32 {
    // SAFETY: the `AsyncFd` owns the `OwnedFd`, which stays open and is the same descriptor
    // (`as_raw_fd` never changes) until the `AsyncFd` is dropped.
    let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
    match registered {
        Ok(fd) => {
            let _ = fd.readable().await;
        }
        Err(e) => {
            tracing::debug!("cannot poll the pidfd of {pid}: {e}");
            std::future::pending::<()>().await;
        }
    }
    pid
}

/// The pids under `proc_dir` whose parent is `parent`, except `own`.
pub fn children(proc_dir: &Path, parent: u32, own: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        // A process can end between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if parse_stat(&stat).is_some_and(|(_, ppid)| ppid == parent) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// The pid and parent pid of a `/proc/PID/stat` line: `PID (COMM) STATE PPID ...`, where COMM
/// may hold spaces and parentheses (so the last `)` ends it).
pub fn parse_stat(stat: &str) -> Option<(u32, u32)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((pid, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_read() {
        assert_eq!(
            parse_stat("2766 (jormungandr) S 2700 2766 2766 0 -1 4194560 1 0 0"),
            Some((2766, 2700))
        );
        // A command name with spaces and parentheses.
        assert_eq!(parse_stat("12 (a) b (c) S 1) R 34 12 12 0"), Some((12, 34)));
        for bad in ["", "12 (x", "x (y) S 1", "12 (y) S", "12 (y) S p"] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn children_are_found_by_parent() {
        let dir = tempfile::tempdir().unwrap();
        let process = |pid: u32, ppid: u32| {
            let path = dir.path().join(pid.to_string());
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("stat"), format!("{pid} (p {pid}) S {ppid} 0 0")).unwrap();
        };
        process(10, 1);
        process(11, 10);
        process(12, 10);
        process(13, 10); // the listener itself
        process(14, 11);
        std::fs::create_dir(dir.path().join("self")).unwrap();
        std::fs::create_dir(dir.path().join("15")).unwrap(); // ended: no stat
        assert_eq!(children(dir.path(), 10, 13), [11, 12]);
        assert_eq!(
            children(&dir.path().join("none"), 10, 13),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn the_real_proc_lists_a_child_of_this_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = children(Path::new("/proc"), std::process::id(), 0);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
    }

    #[tokio::test]
    async fn a_watched_process_that_exits_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::inbox::SOCKET_NAME);
        let mut inbox = super::super::inbox::Inbox::bind(&path).await.unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let watcher = Watcher::spawn("default", &path);
        watcher.ask(Watch::Pid(pid));
        // Let the watcher open the pidfd before the kill.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let killed = tokio::time::Instant::now();
        child.kill().unwrap();
        // Not reaped yet: a zombie, as a crashed node is until supervisord reaps it.
        let notice = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if let notice @ Notice::Exited { pid: seen, .. } = inbox.next().await
                    && seen == pid
                {
                    return notice;
                }
            }
        })
        .await
        .expect("an exit hint");
        assert!(killed.elapsed() < std::time::Duration::from_millis(500));
        assert_eq!(
            notice,
            Notice::Exited {
                supervisor: "default".into(),
                pid
            }
        );
        let _ = child.wait();
    }
}
