//! Progress on a terminal: one spinner per job with its name, elapsed time
//! and current step (the transform's model), left behind as a line with its
//! status, rows and seconds, and under ingest one bar per table for the
//! bytes of its landing files read. Under cron, systemd or Kubernetes stderr
//! is not a terminal and nothing is drawn (the logs and the run manifest say
//! the same, for machines).
//!
//! The nightly tells this module which job starts, and hands it the
//! manifest's job records as they grow: a job's line is finished from its
//! own record, so the terminal and `runs/<run_id>.json` never disagree.
//! Log lines reach stderr through [`log_writer`], which writes them
//! between redraws of the spinners instead of through them.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Every spinner of the process, so log lines can be written around them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

fn bars() -> &'static MultiProgress {
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// The running job's spinner, for [`step`].
static CURRENT: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Whether progress is drawn: stderr is a terminal, and `ATTUNE_LOG` does
/// not ask for logs, which would interleave with the bars.
pub fn shown() -> bool {
    static SHOWN: OnceLock<bool> = OnceLock::new();
    *SHOWN
        .get_or_init(|| std::io::stderr().is_terminal() && std::env::var_os("ATTUNE_LOG").is_none())
}

/// Says on the running job's spinner what it is doing now (`running:
/// customer_features (9 of 14)`); nothing when no spinner shows.
pub fn step(what: &str) {
    let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bar) = current.as_ref() {
        bar.set_message(format!("running: {what}"));
    }
}

/// A bar for one table of a job that reads `bytes` of files, drawn below
/// the job's spinner; hidden (and free: [`TableBar::reader`] then adds
/// nothing) when progress is not [`shown`].
pub fn table_bar(table: &str, bytes: u64) -> TableBar {
    TableBar::with(table, bytes, shown())
}

/// See [`table_bar`].
#[derive(Debug, Clone)]
pub struct TableBar(ProgressBar);

impl TableBar {
    fn with(table: &str, bytes: u64, draw: bool) -> TableBar {
        // styled before it is added, so no default bar is ever drawn
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::hidden())
            .with_style(table_style(
                "    {prefix:<22} [{bar:20}] {bytes:>10} of {total_bytes:<10}",
            ))
            .with_prefix(table.to_string());
        TableBar(if draw { bars().add(bar) } else { bar })
    }

    /// `read` counted into the bar as it is read.
    pub fn reader(&self, read: Box<dyn std::io::Read + Send>) -> Box<dyn std::io::Read + Send> {
        if self.0.is_hidden() {
            read
        } else {
            Box::new(self.0.wrap_read(read))
        }
    }

    /// Bytes counted so far.
    pub fn position(&self) -> u64 {
        self.0.position()
    }

    /// Leaves the bar as a line with the bytes read and `summary`, cut to
    /// the terminal's width (the run manifest has every count).
    pub fn finish(&self, summary: String) {
        self.0.set_style(table_style(
            "    {prefix:<22} {total_bytes:>10}  {wide_msg}",
        ));
        self.0.finish_with_message(summary);
    }
}

fn table_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// stderr for the log subscriber (`tracing_subscriber::fmt().with_writer(log_writer)`):
/// while spinners are showing, each log line is written with them cleared
/// and redrawn below it.
pub fn log_writer() -> LogWriter {
    LogWriter
}

/// See [`log_writer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BARS.get() {
            Some(bars) => bars.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

use crate::manifest::JobRecord;

/// The spinners of one nightly run.
pub struct Progress {
    enabled: bool,
    /// Draw on stderr (false only in tests, which check the bookkeeping).
    draw: bool,
    /// The job whose spinner is showing.
    current: Option<(String, ProgressBar)>,
    /// How many of the manifest's job records have been shown.
    shown: usize,
}

impl Progress {
    /// Spinners when stderr is a terminal (and `ATTUNE_LOG` does not ask
    /// for logs, which would interleave with them); silent otherwise.
    pub fn new() -> Progress {
        Progress::with(shown(), true)
    }

    fn with(enabled: bool, draw: bool) -> Progress {
        Progress {
            enabled,
            draw,
            current: None,
            shown: 0,
        }
    }

    /// A spinner for `job` (the previous one, if its job wrote no record,
    /// was not run and disappears).
    pub fn start(&mut self, job: &str) {
        self.clear_current();
        if !self.enabled {
            return;
        }
        let bar = if self.draw {
            bars().add(ProgressBar::new_spinner())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<11} {elapsed:>4}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(job.to_string());
        bar.set_message("running");
        bar.enable_steady_tick(Duration::from_millis(120));
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        self.current = Some((job.to_string(), bar));
    }

    /// Shows the records added to `jobs` since the last call: the running
    /// job's spinner becomes its summary line.
    pub fn update(&mut self, jobs: &[JobRecord]) {
        for record in jobs.iter().skip(self.shown) {
            let line = summary(record);
            match self.current.take() {
                Some((job, bar)) if job == record.job => {
                    forget_current();
                    bar.set_style(
                        ProgressStyle::with_template("  {prefix:<11} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.finish_with_message(line);
                }
                other => {
                    self.current = other;
                    if self.enabled && self.draw {
                        let _ = bars().println(format!("  {:<11} {line}", record.job));
                    }
                }
            }
        }
        self.shown = jobs.len();
    }

    fn clear_current(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            forget_current();
            bar.finish_and_clear();
        }
    }
}

/// [`step`] has no spinner to write on until the next job starts.
fn forget_current() {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear_current();
    }
}

/// A job's line once it is done: `ok  12,345 rows in → 6,789 out  3.2s`.
fn summary(r: &JobRecord) -> String {
    match r.status.as_str() {
        "skipped" => "skipped (inputs unchanged)".to_string(),
        "failed" => format!(
            "FAILED after {:.1}s: {}",
            r.seconds,
            r.error.as_deref().unwrap_or("see the run manifest")
        ),
        status => {
            let warnings = match r.warnings.len() {
                0 => String::new(),
                1 => ", 1 warning".to_string(),
                n => format!(", {n} warnings"),
            };
            format!(
                "{status}  {} rows in, {} out  {:.1}s{warnings}",
                r.rows_in, r.rows_out, r.seconds
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(job: &str, status: &str) -> JobRecord {
        JobRecord {
            job: job.into(),
            status: status.into(),
            started_at: "2025-03-14T02:00:00.000Z".into(),
            seconds: 3.25,
            rows_in: 1200,
            rows_out: 800,
            peak_rss_bytes: None,
            job_peak_rss_bytes: None,
            warnings: vec!["w1".into(), "w2".into()],
            error: (status == "failed").then(|| "marts/x: bad file".to_string()),
            details: serde_json::Value::Null,
        }
    }

    #[test]
    fn lines_say_status_rows_and_time() {
        assert_eq!(
            summary(&record("ingest", "ok")),
            "ok  1200 rows in, 800 out  3.2s, 2 warnings"
        );
        assert_eq!(
            summary(&record("segment", "skipped")),
            "skipped (inputs unchanged)"
        );
        assert_eq!(
            summary(&record("voice", "failed")),
            "FAILED after 3.2s: marts/x: bad file"
        );
    }

    /// Held by the tests that start spinners: the running one is global.
    static SPINNERS: Mutex<()> = Mutex::new(());

    #[test]
    fn records_finish_the_running_job_and_are_shown_once() {
        let _one_at_a_time = SPINNERS.lock().unwrap_or_else(|e| e.into_inner());
        // Drawing to a hidden target: the bookkeeping is what is tested.
        let mut p = Progress::with(true, false);
        let current = |p: &Progress| p.current.as_ref().map(|(j, _)| j.clone());
        p.start("ingest");
        assert_eq!(current(&p).as_deref(), Some("ingest"));
        let mut jobs = vec![record("ingest", "ok")];
        p.update(&jobs);
        assert_eq!((p.shown, current(&p)), (1, None), "ingest's line finished");
        p.start("transform");
        // A record of another job (written without a spinner) leaves the
        // running job's spinner alone.
        jobs.push(record("retention", "ok"));
        p.update(&jobs);
        assert_eq!(current(&p).as_deref(), Some("transform"));
        jobs.push(record("transform", "skipped"));
        p.update(&jobs);
        p.update(&jobs);
        assert_eq!((p.shown, current(&p)), (3, None), "each record once");
        // A job that wrote no record (not wanted) disappears when the next starts.
        p.start("segment");
        p.start("voice");
        assert_eq!(current(&p).as_deref(), Some("voice"));
        let silent = Progress::with(false, false);
        assert!(silent.current.is_none());
    }

    #[test]
    fn a_step_shows_on_the_running_job_until_its_line_is_finished() {
        let _one_at_a_time = SPINNERS.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = Progress::with(true, false);
        p.start("transform");
        step("customer_features (9 of 14)");
        let bar = p.current.as_ref().map(|(_, b)| b.clone()).expect("spinner");
        assert_eq!(bar.message(), "running: customer_features (9 of 14)");
        p.update(&[record("transform", "ok")]);
        // a step after the job's line is finished changes nothing
        step("late");
        assert_eq!(bar.message(), summary(&record("transform", "ok")));
    }

    #[test]
    fn a_table_bar_counts_the_bytes_read_through_it() {
        use std::io::Read;
        let bar = TableBar::with("orders", 11, false);
        let mut text = String::new();
        bar.reader(Box::new(std::io::Cursor::new(b"a,b\n1,2\n3,4\n".to_vec())))
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "a,b\n1,2\n3,4\n", "the bytes pass through unchanged");
        // hidden, the bar is not in the way of reading: it counts nothing
        assert_eq!(bar.position(), 0);
        let shown = TableBar(ProgressBar::with_draw_target(
            Some(11),
            ProgressDrawTarget::term_like(Box::new(NoTerm)),
        ));
        let mut sink = Vec::new();
        shown
            .reader(Box::new(std::io::Cursor::new(b"a,b\n1,2\n3,4\n".to_vec())))
            .read_to_end(&mut sink)
            .expect("read");
        assert_eq!(shown.position(), 12);
    }

    /// A terminal that draws nowhere, so a bar counts as shown in a test.
    #[derive(Debug)]
    struct NoTerm;

    impl indicatif::TermLike for NoTerm {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn write_str(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
