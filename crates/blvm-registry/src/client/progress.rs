//! A download's progress on stderr: a bar redrawn in place on a terminal,
//! plain lines otherwise (a log, CI, a pipe).
//!
//! The renderer is thirty lines rather than a dependency: one bar, one
//! line format, no spinner.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How a download reports its progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Progress {
    /// A bar on stderr when it is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines on stderr, terminal or not.
    Lines,
    /// Nothing (tests, a node that logs through tracing).
    Quiet,
}

/// What [`Progress::Auto`] resolved to, or what a test asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One line redrawn with `\r`.
    Bar,
    /// `downloading NAME: N of M bytes` at the start, at each quarter and
    /// at the end.
    Lines,
}

/// How often a bar is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// The progress of one download, written to `out`.
#[derive(Debug)]
pub struct ProgressReport<W: Write> {
    out: W,
    style: Style,
    name: String,
    total: u64,
    started: Instant,
    /// The next quarter (1..=4) a line is due at.
    next_quarter: u64,
    last_draw: Option<Instant>,
}

impl ProgressReport<std::io::Stderr> {
    /// The report `progress` asks for of a download of `name`, `total`
    /// bytes long, on stderr; `None` when quiet.
    pub fn stderr(progress: Progress, name: &str, total: u64) -> Option<Self> {
        let style = match progress {
            Progress::Quiet => return None,
            Progress::Lines => Style::Lines,
            Progress::Auto if std::io::stderr().is_terminal() => Style::Bar,
            Progress::Auto => Style::Lines,
        };
        Some(Self::new(std::io::stderr(), style, name, total))
    }
}

impl<W: Write> ProgressReport<W> {
    /// A report in `style` on `out`; writes the first line.
    pub fn new(out: W, style: Style, name: &str, total: u64) -> Self {
        let mut report = Self {
            out,
            style,
            name: name.to_owned(),
            total,
            started: Instant::now(),
            next_quarter: 1,
            last_draw: None,
        };
        report.update(0);
        report
    }

    /// `received` bytes of the total have arrived. A failed write to a
    /// closed stderr is ignored: progress never fails a download.
    pub fn update(&mut self, received: u64) {
        match self.style {
            Style::Lines => {
                let quarter = received.saturating_mul(4).checked_div(self.total).unwrap_or(4);
                if received == 0 && self.last_draw.is_none() || quarter >= self.next_quarter {
                    self.next_quarter = quarter.saturating_add(1);
                    self.last_draw = Some(Instant::now());
                    let _ = writeln!(
                        self.out,
                        "downloading {}: {received} of {} bytes",
                        self.name, self.total
                    );
                }
            }
            Style::Bar => {
                let now = Instant::now();
                let due = self.last_draw.is_none_or(|last| now - last >= REDRAW_EVERY);
                if due || received >= self.total {
                    self.last_draw = Some(now);
                    let _ = write!(self.out, "\r{}", self.bar(received, now - self.started));
                    let _ = self.out.flush();
                }
            }
        }
    }

    /// Ends the report: the bar's line is closed.
    pub fn finish(mut self) {
        if self.style == Style::Bar {
            let _ = writeln!(self.out);
        }
    }

    fn bar(&self, received: u64, elapsed: Duration) -> String {
        const WIDTH: u64 = 30;
        let percent = received
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100)
            .min(100);
        let filled = (percent * WIDTH / 100) as usize;
        let rate = (received as f64 / elapsed.as_secs_f64().max(0.001)) as u64;
        format!(
            "{} [{}{}] {received}/{} bytes {percent:>3}% {}/s",
            self.name,
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled),
            self.total,
            human_bytes(rate),
        )
    }

    /// The writer, for tests.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// `1.5 MiB`, `300 B`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_for(total: u64, steps: &[u64]) -> String {
        let mut report = ProgressReport::new(Vec::new(), Style::Lines, "block-stats", total);
        for &received in steps {
            report.update(received);
        }
        String::from_utf8(report.into_inner()).expect("progress is text")
    }

    #[test]
    fn plain_lines_come_at_the_start_each_quarter_and_the_end() {
        let steps: Vec<u64> = (1..=100).map(|i| i * 10).collect();
        assert_eq!(
            lines_for(1000, &steps),
            "downloading block-stats: 0 of 1000 bytes\n\
             downloading block-stats: 250 of 1000 bytes\n\
             downloading block-stats: 500 of 1000 bytes\n\
             downloading block-stats: 750 of 1000 bytes\n\
             downloading block-stats: 1000 of 1000 bytes\n"
        );
    }

    #[test]
    fn a_jump_past_several_quarters_prints_one_line() {
        assert_eq!(
            lines_for(1000, &[100, 800, 1000]),
            "downloading block-stats: 0 of 1000 bytes\n\
             downloading block-stats: 800 of 1000 bytes\n\
             downloading block-stats: 1000 of 1000 bytes\n"
        );
    }

    #[test]
    fn an_empty_download_prints_its_start_and_end() {
        assert_eq!(lines_for(0, &[0]), "downloading block-stats: 0 of 0 bytes\n");
    }

    #[test]
    fn the_bar_shows_bytes_percent_and_rate() {
        let report = ProgressReport::new(Vec::new(), Style::Bar, "block-stats", 2048);
        let bar = report.bar(1024, Duration::from_secs(1));
        assert_eq!(
            bar,
            format!(
                "block-stats [{}{}] 1024/2048 bytes  50% 1.0 KiB/s",
                "#".repeat(15),
                "-".repeat(15)
            )
        );
        let drawn = String::from_utf8(report.into_inner()).expect("text");
        assert!(drawn.starts_with("\rblock-stats ["), "{drawn:?}");
    }
}
