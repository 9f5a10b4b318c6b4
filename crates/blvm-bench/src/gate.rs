//! A measured child process that the bench holds at the edges of its
//! measured span: it prints a tag (`WARM`, `DONE`) and waits for a line on
//! stdin, and the bench reads both processes' procfs counters meanwhile,
//! so that the CPU, wake-ups and syscalls per operation cover the span and
//! not the child's start, warm-up or exit.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::procstat::ProcStat;
use crate::Error;

/// A child whose stdout lines arrive on a channel (read by a thread of
/// its own, so that the bench can wait for several children at once) and
/// whose stdin releases it.
pub(crate) struct Gated {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Gated {
    /// Takes over `child`, spawned with stdin and stdout piped.
    pub fn new(mut child: Child) -> Result<Gated, Error> {
        let stdout = child.stdout.take().ok_or("the child's stdout is not piped")?;
        let stdin = child.stdin.take().ok_or("the child's stdin is not piped")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Gated {
            child,
            stdin: Some(stdin),
            lines,
        })
    }

    /// Spawns this binary again with `args` (a floor's or the plain
    /// stack's side), gated.
    pub fn own(args: &[&str]) -> Result<Gated, Error> {
        let child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        Gated::new(child)
    }

    /// Around the measured span of a child that prints `WARM`, one result
    /// line and `DONE`: returns the result line and the span's counters
    /// of this process and of the child, and waits for the child to exit.
    pub fn measure(mut self) -> Result<(String, ProcStat, ProcStat), Error> {
        self.expect("WARM")?;
        let (node0, peer0) = (ProcStat::own(), ProcStat::of(self.pid()).unwrap_or_default());
        self.release()?;
        let result = self.line()?;
        self.expect("DONE")?;
        let (node1, peer1) = (ProcStat::own(), ProcStat::of(self.pid()).unwrap_or_default());
        self.release()?;
        self.finish()?;
        Ok((result, node1.since(&node0), peer1.since(&peer0)))
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's next line, waiting for it.
    pub fn line(&mut self) -> Result<String, Error> {
        self.lines.recv().map_err(|_| "the child closed its output".into())
    }

    /// The child's next line if one arrives within `timeout`.
    pub fn line_within(&mut self, timeout: Duration) -> Result<Option<String>, Error> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Ok(Some(l)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err("the child closed its output".into()),
        }
    }

    /// Waits for the line `tag`; any other line first is an error (the
    /// child said something unexpected, such as `ERROR …`).
    pub fn expect(&mut self, tag: &str) -> Result<(), Error> {
        match self.line()? {
            l if l == tag => Ok(()),
            other => Err(format!("expected {tag} from the child, got {other:?}").into()),
        }
    }

    /// Lets the child go on past the tag it printed.
    pub fn release(&mut self) -> Result<(), Error> {
        let stdin = self.stdin.as_mut().ok_or("the child was finished")?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// Kills the child and reaps it.
    pub fn kill(mut self) -> Result<(), Error> {
        drop(self.stdin.take());
        let _ = self.child.kill();
        self.child.wait()?;
        Ok(())
    }

    /// Closes the child's stdin and waits for it to exit.
    pub fn finish(mut self) -> Result<(), Error> {
        drop(self.stdin.take());
        self.child.wait()?;
        Ok(())
    }
}
