//! Progress on a terminal: one spinner per job with its name, elapsed time
//! and current step (the transform's model), left behind as a line with its
//! status, rows and seconds, and under ingest one bar per table for the
//! bytes of its landing files read. Under cron, systemd or Kubernetes stderr
//! is not a terminal and nothing is drawn (the logs and the run manifest say
//! the same, for machines).
//!
//! The nightly tells this module which jobs start (two may run at once),
//! and hands it each job's manifest record as it is written: a job's line
//! is finished from its own record, so the terminal and
//! `runs/<run_id>.json` never disagree.
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

/// The running jobs' spinners, for [`step`].
static RUNNING: Mutex<Vec<(String, ProgressBar)>> = Mutex::new(Vec::new());

tokio::task_local! {
    /// The job a nightly task runs: [`step`] writes on that job's spinner
    /// when two jobs run at once.
    pub static JOB: &'static str;
}

fn running_bars() -> std::sync::MutexGuard<'static, Vec<(String, ProgressBar)>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether progress is drawn: stderr is a terminal, and `ATTUNE_LOG` does
/// not ask for logs, which would interleave with the bars.
pub fn shown() -> bool {
    static SHOWN: OnceLock<bool> = OnceLock::new();
    *SHOWN
        .get_or_init(|| std::io::stderr().is_terminal() && std::env::var_os("ATTUNE_LOG").is_none())
}

/// Says on the running job's spinner what it is doing now (`running:
/// customer_features (9 of 14)`): the spinner of the task's [`JOB`], or
/// outside such a task the latest started; nothing when no spinner shows.
pub fn step(what: &str) {
    let running = running_bars();
    let bar = match JOB.try_with(|j| *j) {
        Ok(job) => running.iter().find(|(j, _)| j == job),
        Err(_) => running.last(),
    };
    if let Some((_, bar)) = bar {
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
    /// The jobs whose spinners are showing.
    running: Vec<(String, ProgressBar)>,
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
            running: Vec::new(),
        }
    }

    /// A spinner for `job`, beside those of the jobs still running.
    pub fn start(&mut self, job: &str) {
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
        running_bars().push((job.to_string(), bar.clone()));
        self.running.push((job.to_string(), bar));
    }

    /// Shows a job's record as the manifest gets it: the job's running
    /// spinner becomes its summary line.
    pub fn finished(&mut self, record: &JobRecord) {
        let line = summary(record);
        match self.running.iter().position(|(j, _)| *j == record.job) {
            Some(at) => {
                let (job, bar) = self.running.remove(at);
                forget(&job);
                bar.set_style(
                    ProgressStyle::with_template("  {prefix:<11} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.finish_with_message(line);
            }
            None => {
                if self.enabled && self.draw {
                    let _ = bars().println(format!("  {:<11} {line}", record.job));
                }
            }
        }
    }

    fn clear_running(&mut self) {
        for (job, bar) in self.running.drain(..) {
            forget(&job);
            bar.finish_and_clear();
        }
    }
}

/// [`step`] no longer writes on `job`'s spinner.
fn forget(job: &str) {
    running_bars().retain(|(j, _)| j != job);
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear_running();
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
            job_peak_in_use_bytes: None,
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
    fn records_finish_their_own_job_spinner() {
        let _one_at_a_time = SPINNERS.lock().unwrap_or_else(|e| e.into_inner());
        // Drawing to a hidden target: the bookkeeping is what is tested.
        let mut p = Progress::with(true, false);
        let running = |p: &Progress| p.running.iter().map(|(j, _)| j.clone()).collect::<Vec<_>>();
        p.start("ingest");
        assert_eq!(running(&p), ["ingest"]);
        p.finished(&record("ingest", "ok"));
        assert!(running(&p).is_empty(), "ingest's line finished");
        p.start("transform");
        // A record of another job (written without a spinner) leaves the
        // running job's spinner alone.
        p.finished(&record("retention", "ok"));
        assert_eq!(running(&p), ["transform"]);
        p.finished(&record("transform", "skipped"));
        assert!(running(&p).is_empty());
        // Two jobs at once: each record finishes its own spinner.
        p.start("voice");
        p.start("value");
        p.finished(&record("value", "ok"));
        assert_eq!(running(&p), ["voice"]);
        drop(p);
        assert!(
            running_bars().is_empty(),
            "a dropped run leaves no spinner for step"
        );
        let silent = Progress::with(false, false);
        assert!(silent.running.is_empty());
    }

    #[test]
    fn a_step_shows_on_its_own_job_until_its_line_is_finished() {
        let _one_at_a_time = SPINNERS.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = Progress::with(true, false);
        p.start("voice");
        p.start("value");
        let bar = |p: &Progress, job: &str| {
            p.running
                .iter()
                .find(|(j, _)| j == job)
                .map(|(_, b)| b.clone())
                .expect("spinner")
        };
        let (voice, value) = (bar(&p, "voice"), bar(&p, "value"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(JOB.scope("voice", async { step("scoring (1 of 3)") }));
        assert_eq!(voice.message(), "running: scoring (1 of 3)");
        assert_eq!(
            value.message(),
            "running",
            "the other job's spinner is untouched"
        );
        // outside a job's task: the latest started
        step("fitting");
        assert_eq!(value.message(), "running: fitting");
        p.finished(&record("value", "ok"));
        // a step after the job's line is finished changes nothing
        rt.block_on(JOB.scope("value", async { step("late") }));
        assert_eq!(value.message(), summary(&record("value", "ok")));
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
