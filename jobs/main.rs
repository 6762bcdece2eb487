//! The `attune` command: parses arguments, calls the library, maps the result
//! to an exit code. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use attune::config::{INIT_TEMPLATE, ValidConfig};
use attune::context::{JobContext, KeyMode};
use attune::nightly::{self, NightlyParams, RunLock};
use attune::storage::Storage;
use attune::{Error, demo, generate, ingest, privacy, query};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a job failed (see the error and runs/<run_id>.json)
  2  usage or configuration error (bad flag, bad attune.toml, no pseudonymization key)
  3  an audit gate tripped: the run finished and wrote every output, but an audit found
     what its fail_on setting refuses (privacy.fail_on: see marts/privacy_checks;
     fairness.fail_on: see marts/fairness_audit)
  4  another attune run holds the data root's lock
  5  input missing or unusable (no landing folder, unreadable file, bad header)";

/// attune: nightly customer-empathy analytics for small businesses.
///
/// Loads the day's exports (orders, surveys, tickets, reviews, web sessions,
/// offers, initiatives) into a privacy-minimized Parquet lake, and (as the
/// jobs land) models, audits and reports on them.
#[derive(Parser, Debug)]
#[command(version, after_help = EXIT_CODES, after_long_help = format!("Examples:\n  attune demo --dir /tmp/attune-demo\n  attune init && ATTUNE_KEY=$(openssl rand -hex 32) attune nightly --date 2025-03-14\n\n{EXIT_CODES}"))]
struct Cli {
    /// Config file (default: ./attune.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data root, overriding the config and $ATTUNE_ROOT (a folder, file://, s3://, gs://, az://).
    #[arg(long, global = true, value_name = "URL")]
    root: Option<String>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,

    /// More log detail (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented attune.toml with every setting and its default.
    ///
    /// Example: attune init --path /etc/attune/attune.toml
    Init {
        /// Where to write it.
        #[arg(long, default_value = "attune.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Write demo exports of a bakery-café, with planted ground truth.
    ///
    /// Writes DIR/landing/<table>/<YYYY-MM-DD>/ and DIR/ground_truth.json.
    /// Example: attune generate --out /tmp/cafe --customers 20000 --days 730 --seed 7
    Generate(GenerateArgs),
    /// Load landing exports into the lake (validate, minimize, pseudonymize, redact, consent, dedupe).
    ///
    /// Needs the pseudonymization key in the environment variable named by
    /// [pseudonymization] key_env (default ATTUNE_KEY).
    /// Example: ATTUNE_KEY=... attune ingest --date 2025-03-14
    Ingest(DatesArgs),
    /// Run the SQL models (sql/*.sql) on DataFusion as of a date and write the marts.
    ///
    /// Example: attune transform --date 2025-12-31
    Transform {
        /// The run date (YYYY-MM-DD): models see data up to this day.
        #[arg(long)]
        date: NaiveDate,
    },
    /// Compute the Empathy Index as of a date: marts/empathy_index, marts/empathy_contacts.
    ///
    /// A 0-100 composite of responsiveness, closing the loop, resolution, the
    /// tone of the business's replies, human when it matters and perceived
    /// empathy (SERVQUAL), per month, touchpoint, segment and sensitive group,
    /// checked against next month's NPS and retention. Needs the transform's
    /// marts for the date. Example: attune empathy --date 2025-08-28
    Empathy {
        /// The run date (YYYY-MM-DD): contacts up to the end of this day count.
        #[arg(long)]
        date: NaiveDate,
    },
    /// Segment customers: k-means on customer_features, k chosen by silhouette, segments named.
    ///
    /// Reads marts/customer_features of the date; writes marts/segments (customer → segment),
    /// marts/segment_profiles and its rows of marts/model_metrics. Settings: [segment] in attune.toml.
    /// Example: attune segment --date 2025-12-31
    Segment {
        /// The run date (YYYY-MM-DD): the customer_features partition to segment.
        #[arg(long)]
        date: NaiveDate,
    },
    /// Estimate what each initiative did (treatment vs control, or difference in differences) and its ROI.
    ///
    /// Reads the lake and the marts of the date (run `attune transform` first;
    /// CLTV-based rows need marts/customer_value) and writes marts/initiative_roi.
    /// Example: attune roi --date 2025-12-31
    Roi {
        /// The run date (YYYY-MM-DD).
        #[arg(long)]
        date: NaiveDate,
    },
    /// Run every job for a date (default: yesterday) or a range, under one lock;
    /// independent jobs at once ([nightly] parallel_jobs).
    ///
    /// Example: attune nightly --from 2025-03-01 --to 2025-03-14
    Nightly {
        #[command(flatten)]
        dates: DatesArgs,
        /// Run only these jobs (repeatable).
        #[arg(long, value_name = "JOB")]
        only: Vec<String>,
        /// Start at this job: the ones before it are not run.
        #[arg(long, value_name = "JOB")]
        from_job: Option<String>,
        /// Run every job even when its inputs have not changed since it last completed.
        #[arg(long)]
        force: bool,
    },
    /// Run SQL over every lake and mart table (hive-partitioned Parquet with a `dt` column).
    ///
    /// Example: attune query "SELECT channel, COUNT(*) AS orders FROM orders GROUP BY channel"
    /// Example: attune query --file q.sql --format csv --out result.csv
    Query {
        /// The SQL (or use --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        sql: Option<String>,
        /// Read the SQL from a file.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write the result to this file instead of stdout (needed for parquet).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// List every lake and mart table with its partitions, row count and schema.
    ///
    /// Example: attune tables
    /// Example: attune tables --docs > TABLES.md
    Tables {
        /// Print the column documentation (from the contracts and the SQL model headers) instead.
        #[arg(long)]
        docs: bool,
    },
    /// Check what the data root keeps: inventory, unused columns, PII, pseudonyms, consent,
    /// retention, k-anonymity, model features, small cells, erasure.
    ///
    /// Writes marts/privacy_checks for the date and prints one line per check; exits
    /// with code 3 when a check is at or above [privacy] fail_on (default "fail").
    /// Reads the customers exports in landing/ to check that no raw identifier leaked,
    /// but needs no key.
    /// Example: attune privacy --date 2025-12-31
    Privacy {
        /// The run date (YYYY-MM-DD): marts of this date, lake up to it.
        #[arg(long)]
        date: NaiveDate,
    },
    /// Delete landing, lake, quarantine and mart partitions older than [privacy] retention_days.
    ///
    /// Never touches control/, runs/ or reports/. Records what it deleted (tables,
    /// partitions, rows) in runs/<run_id>.json. Default date: yesterday in [nightly] timezone, as nightly.
    /// Example: attune retention --dry-run
    Retention {
        /// The run date (YYYY-MM-DD): partitions dated before it minus retention_days go.
        #[arg(long)]
        date: Option<NaiveDate>,
        /// List what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Erase customers (right to erasure): every row in lake, marts and quarantine,
    /// and keep them out of every later export.
    ///
    /// Needs the pseudonymization key. Records the request (pseudonyms and counts,
    /// never the customer numbers) under control/erasure/. Completes any earlier
    /// request that was interrupted.
    /// Example: attune forget --customer-id C0001234
    /// Example: attune forget --from-file erasure-requests.txt --dry-run
    Forget {
        /// A customer number as the exports carry it (repeatable).
        #[arg(
            long = "customer-id",
            value_name = "ID",
            required_unless_present = "from_file"
        )]
        customer_id: Vec<String>,
        /// A file of customer numbers, one per line (# comments and blank lines skipped).
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Count the rows that would be removed, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Voice of the customer: score what customers say (sentiment, emotions) and compute
    /// NPS, CSAT and CES with 95% intervals and trends, closed-loop follow-ups and themes.
    ///
    /// Writes marts/feedback_scored, voice_scores, voice_themes, voice_closed_loop.
    /// `attune voice score` scores any file the same way, without the lake.
    /// Example: attune voice --date 2025-12-31
    /// Example: attune voice score --input reviews.csv --text-column text --id-column review_id --out scored.csv
    #[command(args_conflicts_with_subcommands = true)]
    Voice {
        /// The run date (YYYY-MM-DD): messages up to the end of this day.
        #[arg(long, required = true)]
        date: Option<NaiveDate>,
        #[command(subcommand)]
        command: Option<VoiceCommand>,
    },
    /// Write the owner's report for a date: reports/<date>/index.html and report.json.
    ///
    /// Reads the marts of the date; a section whose job did not run says so instead of
    /// failing. Prints the path of the page.
    /// Example: attune report --date 2025-12-31
    Report {
        /// The run date (YYYY-MM-DD): the marts to report on.
        #[arg(long)]
        date: NaiveDate,
    },
    /// List recent runs from their manifests (runs/<run_id>.json), newest first.
    ///
    /// A run still marked running while nobody holds the lock is shown as interrupted.
    /// `attune runs show ID` prints one run: per job status, start, duration, rows,
    /// peak memory, warnings and error. ID may be a unique prefix, or `latest`;
    /// an unknown ID exits with code 5 and names the nearest ids.
    /// Example: attune runs --limit 7
    /// Example: attune runs show latest --json
    #[command(args_conflicts_with_subcommands = true)]
    Runs {
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON (one array of run summaries) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<RunsCommand>,
    },
    /// Check that a nightly run can work, and say what to fix.
    ///
    /// Checks the config, the pseudonymization key (present, long enough; never printed),
    /// data root access (writes, reads and deletes a probe object), the exports in landing
    /// for the date, free space on a local root, the clock, the lock and the last run.
    /// One line per check: ok, warn or FAIL. Exits 0 without a FAIL, 2 for a config or
    /// key problem, 5 for an unusable data root or missing exports.
    /// Example: attune doctor
    /// Example: attune doctor --date 2025-03-14
    Doctor {
        /// The date whose exports to look for (default: the dates tonight's nightly would
        /// process: yesterday in [nightly] timezone, after any nights missed since the last run).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Churn and customer lifetime value as of a date, or (`value fit`) on any transaction file.
    ///
    /// `attune value --date D` fits BG/NBD + Gamma-Gamma on the orders up to D,
    /// trains and evaluates the churn model, and writes marts/customer_value,
    /// churn_evaluation, churn_rates and model_metrics.
    /// Example: attune value --date 2025-12-31
    /// Example: attune value fit --transactions orders.csv --customer-column customer --date-column date --amount-column amount --calibration-end 1997-09-30 --holdout-end 1998-06-30 --time-unit weeks --out fit/
    #[command(args_conflicts_with_subcommands = true)]
    Value {
        /// The run date (YYYY-MM-DD).
        #[arg(long)]
        date: Option<NaiveDate>,
        #[command(subcommand)]
        action: Option<ValueAction>,
    },
    /// Audit decisions for fairness across customer groups, or audit any decision table.
    ///
    /// `attune fairness --date D` audits the nightly's decisions (bot routing, response
    /// times, offers, discounts, the churn model, the sentiment scorer) and writes
    /// marts/fairness_audit; exits with code 3 when [fairness] fail_on says so.
    /// `attune fairness audit --input FILE …` audits any CSV or Parquet decision table.
    /// Example: attune fairness --date 2025-12-31
    /// Example: attune fairness audit --input loans.csv --group gender --group age_band --label repaid --prediction approved --out audit.json
    Fairness(FairnessArgs),
    /// Generate the demo business into a folder and run every job on it.
    ///
    /// Uses a public demo key (labelled as such in the run manifest).
    /// Example: attune demo --dir /tmp/attune-demo
    Demo {
        /// Folder for the demo data root.
        #[arg(long, default_value = "attune-demo")]
        dir: PathBuf,
        /// Number of customers (a smaller demo runs faster).
        #[arg(long, default_value_t = 5000)]
        customers: u64,
        /// Days of history.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Subcommand, Debug)]
enum VoiceCommand {
    /// Score a text column of any CSV or Parquet file the way the voice job scores comments.
    ///
    /// Writes one row per input row: row number, the id column (when given), language, scored,
    /// unscored_reason, sentiment (-1..1), label and six emotions (0..1). Messages in a language
    /// without a lexicon (other than English, Spanish, German) are marked unscored, not neutral.
    /// The output format follows the --out extension (.csv, .parquet).
    ///
    /// Example: attune voice score --input comments.parquet --text-column comment --out scored.parquet
    Score {
        /// Input file (.csv with a header row, or .parquet).
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Column holding the text to score.
        #[arg(long, value_name = "COL")]
        text_column: String,
        /// Column copied to the output to join the scores back (as text).
        #[arg(long, value_name = "COL")]
        id_column: Option<String>,
        /// Output file (.csv or .parquet); written atomically.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// Print one run's manifest readably (or raw with --json).
    ///
    /// Example: attune runs show 20250314T020000Z-1a2b3c4d
    Show {
        /// The run id, a unique prefix of it, or `latest`.
        id: String,
        /// Print the manifest as stored (JSON).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ValueAction {
    /// Fit BG/NBD and Gamma-Gamma on any transaction export (CSV or Parquet), without a data root.
    ///
    /// Writes OUT/summary.csv, parameters.json, predictions.csv and, with a
    /// holdout, holdout.csv (predicted versus actual repeat purchases).
    /// Transactions on one day count as one purchase. Margin and discount
    /// rate come from [value] in the config.
    /// Example: attune value fit --transactions cdnow.csv --customer-column customer_id --date-column date --amount-column amount --calibration-end 1997-09-30 --holdout-end 1998-06-30 --time-unit weeks --out cdnow-fit
    Fit(ValueFitArgs),
}

#[derive(Args, Debug)]
struct ValueFitArgs {
    /// Transactions: .csv (header line), .csv.gz or .parquet.
    #[arg(long, value_name = "FILE")]
    transactions: PathBuf,
    /// Column with the customer id.
    #[arg(long, value_name = "C")]
    customer_column: String,
    /// Column with the transaction date (YYYY-MM-DD, or a timestamp).
    #[arg(long, value_name = "D")]
    date_column: String,
    /// Column with the transaction amount.
    #[arg(long, value_name = "A")]
    amount_column: String,
    /// Last day of the calibration period (inclusive).
    #[arg(long, value_name = "DATE")]
    calibration_end: NaiveDate,
    /// Last day of the holdout period (inclusive): adds predicted versus actual.
    #[arg(long, value_name = "DATE")]
    holdout_end: Option<NaiveDate>,
    /// Unit of t_x, T and alpha.
    #[arg(long, value_enum, default_value_t = Unit::Days)]
    time_unit: Unit,
    /// Output folder (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Unit {
    Days,
    Weeks,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

impl From<Format> for query::OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => query::OutputFormat::Table,
            Format::Csv => query::OutputFormat::Csv,
            Format::Json => query::OutputFormat::Json,
            Format::Parquet => query::OutputFormat::Parquet,
        }
    }
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct FairnessArgs {
    #[command(subcommand)]
    command: Option<FairnessCommand>,
    /// The run date (YYYY-MM-DD) whose marts are audited.
    #[arg(long)]
    date: Option<NaiveDate>,
}

#[derive(Subcommand, Debug)]
enum FairnessCommand {
    /// Audit any decision table: per-group metrics with 95% intervals, ratios and
    /// differences to a reference group, tests with Benjamini-Hochberg correction,
    /// verdicts with explanations, including intersections of the groups.
    ///
    /// Outcome columns are read by type: boolean or 0/1 → a rate; other numbers →
    /// mean and median; text → the share of each category. --label with --prediction
    /// adds true/false positive rates, precision and Fairlearn's disparity metrics
    /// (with --score: calibration). Settings not given as flags come from [fairness]
    /// in attune.toml.
    /// Example: attune fairness audit --input decisions.parquet --group region --group age_band --outcome discount_pct --out audit.parquet
    Audit(AuditArgs),
}

#[derive(Args, Debug)]
struct AuditArgs {
    /// The decision table (.csv with a header row, or .parquet).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// A group column (sensitive attribute); repeat for several.
    #[arg(long = "group", value_name = "COL", required = true)]
    groups: Vec<String>,
    /// The true outcome (boolean or 0/1), for error rates with --prediction.
    #[arg(long, value_name = "COL")]
    label: Option<String>,
    /// The decision (boolean or 0/1).
    #[arg(long, value_name = "COL")]
    prediction: Option<String>,
    /// A predicted probability, for calibration (with --label).
    #[arg(long, value_name = "COL")]
    score: Option<String>,
    /// Another outcome column; repeat for several.
    #[arg(long = "outcome", value_name = "COL")]
    outcomes: Vec<String>,
    /// A column naming the person each row is about, so group sizes count people, not rows.
    #[arg(long, value_name = "COL")]
    subject: Option<String>,
    /// Where to write the findings (.json or .parquet).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Smallest group shown (default: min_group_size of attune.toml, 10).
    #[arg(long)]
    min_group_size: Option<usize>,
    /// Audit intersections of every pair of groups (default) or none.
    #[arg(long, value_enum)]
    intersections: Option<IntersectionsArg>,
    /// Reference group of a dimension, as DIMENSION=GROUP (default: the largest group); repeatable.
    #[arg(long = "reference", value_name = "DIM=GROUP")]
    references: Vec<String>,
    /// Exit with code 3 when a finding reaches this verdict.
    #[arg(long, value_enum)]
    fail_on: Option<FailOnArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum IntersectionsArg {
    Pairwise,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FailOnArg {
    Never,
    Concern,
    Review,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Data root folder to write landing/ and ground_truth.json into.
    #[arg(long)]
    out: PathBuf,
    /// Number of customers.
    #[arg(long, default_value_t = 5000)]
    customers: u64,
    /// Days of history.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First day (YYYY-MM-DD).
    #[arg(long, default_value = "2025-01-01")]
    start: NaiveDate,
}

#[derive(Args, Debug)]
struct DatesArgs {
    /// The date to process (YYYY-MM-DD). Default for nightly: yesterday in
    /// [nightly] timezone, after any nights missed since the last run.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    date: Option<NaiveDate>,
    /// First date of a range (with --to).
    #[arg(long, requires = "to")]
    from: Option<NaiveDate>,
    /// Last date of a range (with --from).
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
}

impl DatesArgs {
    /// The dates given on the command line, if any.
    fn given(&self) -> anyhow::Result<Option<Vec<NaiveDate>>> {
        if let (Some(f), Some(t)) = (self.from, self.to) {
            return Ok(Some(nightly::date_range(f, t)?));
        }
        Ok(self.date.map(|d| vec![d]))
    }

    /// The dates given, which must be given.
    fn dates(&self) -> anyhow::Result<Vec<NaiveDate>> {
        self.given()?
            .ok_or_else(|| Error::Config("give --date YYYY-MM-DD or --from/--to".into()).into())
    }
}

fn main() -> ExitCode {
    // before clap, tracing or tokio start a thread
    let allocator = attune::memory::tune_allocator();
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    match allocator {
        Some(setup) => tracing::debug!(?setup, "glibc allocator set up"),
        None => tracing::debug!("allocator left as the environment sets it"),
    }
    attune::nightly::panics::install_hook(matches!(cli.log_format, LogFormat::Json));
    let format = cli.log_format;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code(&err);
            match format {
                LogFormat::Human => eprintln!("error: {err:#}"),
                // A collector parses every stderr line as JSON: the final
                // error is one more event, with the exit code as a field.
                LogFormat::Json => {
                    tracing::error!(exit_code = code, error = %format!("{err:#}"), "attune failed")
                }
            }
            ExitCode::from(code)
        }
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<Error>().map_or(1, Error::exit_code)
}

fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "warn,attune=warn",
        1 => "warn,attune=info",
        _ => "info,attune=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ATTUNE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(nightly::progress::log_writer);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<ValidConfig> {
    let path = match &cli.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("attune.toml")).filter(|p| p.exists()),
    };
    let mut cfg = ValidConfig::load(path.as_deref())?;
    if let Some(root) = &cli.root {
        cfg.root = root.clone();
    }
    Ok(cfg)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init { path, force } => {
            if path.exists() && !force {
                return Err(Error::Config(format!(
                    "{} exists; use --force to overwrite it",
                    path.display()
                ))
                .into());
            }
            std::fs::write(path, INIT_TEMPLATE).map_err(|e| Error::io(path, e))?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Generate(a) => {
            let params = generate::GenerateParams {
                out: a.out.clone(),
                customers: a.customers,
                days: a.days,
                seed: a.seed,
                start: a.start,
            };
            let started = std::time::Instant::now();
            generate::generate(&params)?;
            println!("{}", a.out.join("landing").display());
            println!("{}", a.out.join("ground_truth.json").display());
            eprintln!(
                "generated {} customers over {} days in {:.1}s",
                a.customers,
                a.days,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Ingest(d) => {
            let dates = d.dates()?;
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::Required)?;
            let _lock = RunLock::acquire(&ctx)?;
            let (outcome, manifest) = runtime()?.block_on(ingest::run_recorded(&ctx, &dates))?;
            print_ingest(&outcome);
            eprintln!("run manifest: {}", ctx.storage.display(&manifest));
            Ok(())
        }
        Command::Transform { date } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            let _lock = RunLock::acquire(&ctx)?;
            let outcome = runtime()?.block_on(attune::transform::run(&ctx, *date))?;
            for m in &outcome.models {
                println!(
                    "{:<24} {:<6} {:>10} rows  {:>2} data tests  {:.2}s",
                    m.model, m.materialized, m.rows, m.data_tests, m.seconds
                );
            }
            Ok(())
        }
        Command::Report { date } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            let _lock = RunLock::acquire(&ctx)?;
            let o = runtime()?.block_on(attune::report::run(&ctx, *date))?;
            for w in &o.warnings {
                eprintln!("note: {w}");
            }
            eprintln!("report.json: {}", o.json_path);
            println!("{}", o.html_path);
            Ok(())
        }
        Command::Empathy { date } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            let _lock = RunLock::acquire(&ctx)?;
            let outcome = runtime()?.block_on(attune::empathy::run(&ctx, *date))?;
            print_empathy(&outcome);
            Ok(())
        }
        Command::Segment { date } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            let _lock = RunLock::acquire(&ctx)?;
            let outcome = runtime()?.block_on(attune::segment::run(&ctx, *date))?;
            println!(
                "{} customers, k = {}, silhouette {}",
                outcome.rows_in,
                outcome.chosen_k.map_or("-".into(), |k| k.to_string()),
                outcome.silhouette.map_or("-".into(), |s| format!("{s:.3}"))
            );
            for s in &outcome.segments {
                println!(
                    "{:>3}  {:<40} {:>10}",
                    s.segment_id,
                    s.segment_name,
                    s.customers.map_or("not shown".into(), |c| c.to_string())
                );
            }
            for w in &outcome.warnings {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        Command::Roi { date } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            let _lock = RunLock::acquire(&ctx)?;
            let outcome = runtime()?.block_on(attune::roi::run(&ctx, *date))?;
            print_phases("roi", &outcome.seconds);
            for i in &outcome.initiatives {
                println!(
                    "{:<12} {:<26} {:<7} {} rows ({} without an effect)",
                    i.initiative_id, i.design, i.evidence, i.rows, i.without_effect
                );
            }
            if let Some(night) = outcome.outcomes_carried_from {
                println!(
                    "the outcome sums of {night} were carried over: only the orders and answers since were counted"
                );
            }
            // The warnings reach stderr through the job's log (and the manifest in a nightly run).
            println!("marts/initiative_roi/dt={date}");
            Ok(())
        }
        Command::Nightly {
            dates,
            only,
            from_job,
            force,
        } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::Required)?;
            let rt = runtime()?;
            let dates = match dates.given()? {
                Some(d) => d,
                None => rt.block_on(nightly::default_dates(&ctx, chrono::Utc::now()))?,
            };
            let outcome = rt.block_on(nightly::run(
                &ctx,
                &NightlyParams {
                    dates,
                    only: only.clone(),
                    from_job: from_job.clone(),
                    force: *force,
                },
            ))?;
            if let LogFormat::Json = cli.log_format {
                // Collectors (Kubernetes, journald) mix stdout into the log
                // stream: one JSON line, the details are in the manifest.
                for w in outcome.ingest.iter().flat_map(|i| &i.warnings) {
                    tracing::warn!(job = "ingest", warning = %w, "ingest warning");
                }
                let m = &outcome.manifest;
                println!(
                    "{}",
                    serde_json::json!({
                        "run_id": m.run_id, "status": m.status, "dates": m.dates, "manifest": outcome.manifest_path,
                    })
                );
                return Ok(());
            }
            if let Some(i) = &outcome.ingest {
                print_ingest(i);
            }
            println!("{}", outcome.manifest_path);
            Ok(())
        }
        Command::Query {
            sql,
            file,
            format,
            out,
        } => {
            let sql = match (sql, file) {
                (Some(s), _) => s.clone(),
                (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?,
                (None, None) => unreachable!("clap requires one"),
            };
            let storage = Storage::configured(&load_config(&cli)?)?;
            let format = query::OutputFormat::from(*format);
            let batches =
                runtime()?.block_on(query::run(&storage, &sql, format, out.as_deref()))?;
            match out {
                Some(path) => println!("{}", path.display()),
                None => println!("{}", query::render(&batches, format)?),
            }
            Ok(())
        }
        Command::Tables { docs: true } => {
            let cfg = load_config(&cli)?;
            let contracts = attune::schema::Contracts::builtin()?;
            let models = attune::transform::models::load(cfg.models_dir.as_deref())?;
            let mart_docs = attune::mart::docs()?;
            print!("{}", query::docs(&contracts, &models, &mart_docs));
            Ok(())
        }
        Command::Tables { docs: false } => {
            let storage = Storage::configured(&load_config(&cli)?)?;
            let tables = runtime()?.block_on(query::tables(&storage))?;
            for t in &tables {
                let (first, last) = (t.partitions.first(), t.partitions.last());
                println!(
                    "{}/{}  {} rows, {} partitions{}",
                    t.table.area,
                    t.table.name,
                    t.rows,
                    t.partitions.len(),
                    match (first, last) {
                        (Some(a), Some(b)) => format!(" (dt {a} … {b})"),
                        _ => String::new(),
                    }
                );
                for (name, ty, nullable) in &t.columns {
                    println!(
                        "    {name:<28} {ty}{}",
                        if *nullable { "" } else { " not null" }
                    );
                }
            }
            Ok(())
        }
        Command::Privacy { date } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            let _lock = RunLock::acquire(&ctx)?;
            let outcome = runtime()?.block_on(privacy::run(&ctx, *date))?;
            for c in &outcome.summary.checks {
                println!(
                    "{:>2}  {:<5} {:<22} {}",
                    c.id,
                    c.status.as_str(),
                    c.name,
                    c.title
                );
            }
            println!(
                "privacy score {}/100 ({} findings to fix, {} warnings); details: attune query \"SELECT * FROM privacy_checks WHERE dt = DATE '{date}' AND status <> 'pass'\"",
                outcome.summary.score, outcome.fail_findings, outcome.warn_findings
            );
            outcome.gate()?;
            Ok(())
        }
        Command::Retention { date, dry_run } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            // yesterday in the business's time zone, as the nightly's
            let date = match date {
                Some(d) => *d,
                None => chrono::Utc::now()
                    .with_timezone(&ctx.cfg.timezone)
                    .date_naive()
                    .pred_opt()
                    .context("no day before today")?,
            };
            let _lock = (!dry_run).then(|| RunLock::acquire(&ctx)).transpose()?;
            let opts = privacy::retention::RetentionOptions {
                dry_run: *dry_run,
                ..Default::default()
            };
            let o = runtime()?.block_on(privacy::retention::run(&ctx, date, &opts))?;
            for p in &o.partitions {
                println!(
                    "{} {}/{} {}  {} files  {} rows",
                    if o.dry_run { "would delete" } else { "deleted" },
                    p.area,
                    p.table,
                    p.date,
                    p.files,
                    p.rows.map_or("?".to_string(), |r| r.to_string())
                );
            }
            eprintln!(
                "{} partitions older than {} ({} days before {}); {} rows{}",
                o.partitions.len(),
                o.cutoff,
                o.retention_days,
                o.date,
                o.rows_in,
                if o.dry_run {
                    " (dry run: nothing deleted)"
                } else {
                    ""
                }
            );
            if let Some(m) = &o.manifest_path {
                println!("{m}");
            }
            Ok(())
        }
        Command::Forget {
            customer_id,
            from_file,
            dry_run,
        } => {
            let mut ids = customer_id.clone();
            if let Some(f) = from_file {
                ids.extend(privacy::forget::read_id_file(f)?);
            }
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::Required)?;
            let _lock = (!dry_run).then(|| RunLock::acquire(&ctx)).transpose()?;
            let opts = privacy::forget::ForgetOptions {
                dry_run: *dry_run,
                ..Default::default()
            };
            let o = runtime()?.block_on(privacy::forget::run(&ctx, &ids, &opts))?;
            for (table, rows) in &o.rows_removed {
                println!(
                    "{:<32} {:>8} rows {}",
                    table,
                    rows,
                    if o.dry_run {
                        "would be removed"
                    } else {
                        "removed"
                    }
                );
            }
            for w in &o.warnings {
                eprintln!("warning: {w}");
            }
            for r in &o.resumed {
                eprintln!("completed interrupted erasure request {r}");
            }
            match &o.request_id {
                Some(id) => eprintln!(
                    "{} customer(s) forgotten: {} rows removed from {} files; request {id} recorded in control/erasure/",
                    o.customers, o.rows_out, o.files_rewritten
                ),
                None => eprintln!(
                    "dry run: {} customer(s), {} rows would be removed; nothing changed",
                    o.customers, o.rows_out
                ),
            }
            Ok(())
        }
        Command::Voice {
            date: Some(date),
            command: None,
        } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            let _lock = RunLock::acquire(&ctx)?;
            let o = runtime()?.block_on(attune::voice::run(&ctx, *date))?;
            for (source, n) in &o.messages_by_source {
                println!("{source:<8} {n:>10} messages");
            }
            println!(
                "scored {} messages; voice_scores {} rows ({} suppressed), voice_themes {}, voice_closed_loop {}",
                o.scored, o.score_rows, o.suppressed_score_rows, o.theme_rows, o.closed_loop_rows
            );
            if let Some(night) = o.carried_from {
                println!(
                    "the scores of {night} were carried over: only the messages new since, and the themes' {} days, were scored",
                    ctx.cfg.voice.themes_days
                );
            }
            for w in &o.warnings {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        Command::Voice { command: None, .. } => {
            Err(Error::Config("give --date YYYY-MM-DD, or `attune voice score …`".into()).into())
        }
        Command::Voice {
            command:
                Some(VoiceCommand::Score {
                    input,
                    text_column,
                    id_column,
                    out,
                }),
            ..
        } => {
            let o =
                attune::voice::score::score_file(input, text_column, id_column.as_deref(), out)?;
            println!("{}", out.display());
            let counts = |m: &std::collections::BTreeMap<String, u64>| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            eprintln!(
                "scored {} of {} rows; labels: {}",
                o.scored,
                o.rows_in,
                counts(&o.labels)
            );
            eprintln!("languages: {}", counts(&o.languages));
            for w in &o.warnings {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        Command::Runs {
            limit,
            json,
            command,
        } => {
            let storage = Storage::configured(&load_config(&cli)?)?;
            let rt = runtime()?;
            let lock_free = !rt.block_on(nightly::lock::is_held_anywhere(&storage))?;
            match command {
                None => {
                    let runs = rt.block_on(attune::runs::list(&storage, *limit, lock_free))?;
                    if *json {
                        println!("{}", serde_json::to_string_pretty(&runs)?);
                    } else if runs.is_empty() {
                        eprintln!("no runs yet under runs/ (`attune nightly` writes one per run)");
                    } else {
                        print!("{}", attune::runs::render_list(&runs));
                    }
                }
                Some(RunsCommand::Show { id, json }) => {
                    let m = rt.block_on(attune::runs::find(&storage, id))?;
                    if *json {
                        println!("{}", serde_json::to_string_pretty(&m)?);
                    } else {
                        print!("{}", attune::runs::render_manifest(&m, lock_free));
                    }
                }
            }
            Ok(())
        }
        Command::Doctor { date } => {
            let cfg = load_config(&cli).map_err(|e| format!("{e:#}"));
            let report = runtime()?.block_on(attune::doctor::run(cfg, *date, chrono::Utc::now()));
            print!("{}", report.render());
            report.result()?;
            Ok(())
        }
        Command::Value { date, action } => match (date, action) {
            (_, Some(ValueAction::Fit(a))) => {
                let cfg = load_config(&cli)?;
                let params = attune::value::fit::FitParams {
                    transactions: a.transactions.clone(),
                    customer_column: a.customer_column.clone(),
                    date_column: a.date_column.clone(),
                    amount_column: a.amount_column.clone(),
                    calibration_end: a.calibration_end,
                    holdout_end: a.holdout_end,
                    time_unit: match a.time_unit {
                        Unit::Days => attune::value::summary::TimeUnit::Days,
                        Unit::Weeks => attune::value::summary::TimeUnit::Weeks,
                    },
                    out: a.out.clone(),
                    gross_margin: cfg.value.gross_margin,
                    annual_discount_rate: cfg.value.annual_discount_rate,
                    max_iterations: cfg.value.max_iterations,
                };
                let o = runtime()?.block_on(attune::value::fit::run(&params))?;
                print_clv(&o.models);
                for h in &o.holdout {
                    println!(
                        "holdout x={:<4} customers {:>7}  predicted {:>8.4}  actual {:>8.4}",
                        h.x, h.customers, h.predicted_mean, h.actual_mean
                    );
                }
                for f in &o.files {
                    println!("{}", f.display());
                }
                Ok(())
            }
            (Some(date), None) => {
                let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
                let _lock = RunLock::acquire(&ctx)?;
                let o = runtime()?.block_on(attune::value::run(&ctx, *date))?;
                print_clv(&o.clv);
                if let Some(c) = &o.churn {
                    let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
                    println!(
                        "churn model: ROC AUC {} (active at cut-off {}), Brier {}, top-decile lift {} on {} held-out customers; {} at risk",
                        show(c.roc_auc),
                        show(c.roc_auc_active_at_cutoff),
                        show(c.brier_score),
                        show(c.top_decile_lift),
                        c.holdout_customers,
                        o.at_risk_customers
                    );
                }
                // Warnings reach stderr through the library's log already.
                println!("{} customers scored, {} rows written", o.customers_scored, o.rows_out);
                print_phases("value", &o.seconds);
                Ok(())
            }
            (None, None) => Err(Error::Config(
                "give --date YYYY-MM-DD (the nightly job) or use `attune value fit` (any transaction file)".into(),
            )
            .into()),
        },
        Command::Fairness(f) => run_fairness(&cli, f),
        Command::Demo {
            dir,
            customers,
            days,
        } => {
            let started = std::time::Instant::now();
            let outcome = runtime()?.block_on(demo::run(dir, *customers, *days))?;
            let root = outcome.root.display();
            if let Some(i) = &outcome.nightly.ingest {
                print_ingest(i);
            }
            println!();
            println!("demo data root:  {root}");
            println!("landing exports: {root}/landing/");
            println!("planted truth:   {root}/ground_truth.json");
            println!("lake (Parquet):  {root}/lake/");
            println!("quarantine:      {root}/quarantine/");
            println!("marts (Parquet): {root}/marts/");
            println!("run manifest:    {}", outcome.nightly.manifest_path);
            if let Some(page) = outcome
                .nightly
                .manifest
                .dates
                .last()
                .map(|d| outcome.root.join(format!("reports/{d}/index.html")))
                .filter(|p| p.exists())
            {
                println!("owner's report:  {}", page.display());
            }
            eprintln!(
                "demo finished in {:.1}s (public demo key: pseudonyms are not protected)",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn print_clv(m: &attune::value::clv::ClvModels) {
    let bg = &m.bg_nbd;
    println!(
        "BG/NBD ({} customers, time unit {}): r {:.4}  alpha {:.4}  a {:.4}  b {:.4}  log-likelihood {:.2}  [{}]",
        bg.customers,
        m.time_unit.name(),
        bg.params.r,
        bg.params.alpha,
        bg.params.a,
        bg.params.b,
        bg.log_likelihood,
        bg.optimizer.describe()
    );
    if let Some(gg) = &m.gamma_gamma {
        println!(
            "Gamma-Gamma ({} repeat customers): p {:.4}  q {:.4}  gamma {:.4}  log-likelihood {:.2}  [{}]",
            gg.customers,
            gg.params.p,
            gg.params.q,
            gg.params.gamma,
            gg.log_likelihood,
            gg.optimizer.describe()
        );
    }
    if let Some(r) = m.frequency_monetary_correlation {
        println!("frequency-value correlation (Gamma-Gamma assumes 0): {r:.3}");
    }
}

fn run_fairness(cli: &Cli, f: &FairnessArgs) -> anyhow::Result<()> {
    use attune::config::FairnessFailOn;
    use attune::fairness;
    let cfg = load_config(cli)?;
    match &f.command {
        None => {
            let date = f.date.ok_or_else(|| {
                Error::Config("give --date YYYY-MM-DD (or the `audit` subcommand)".into())
            })?;
            let fail_on = cfg.fairness.fail_on;
            let ctx = JobContext::open(cfg, KeyMode::NotNeeded)?;
            let _lock = RunLock::acquire(&ctx)?;
            let o = runtime()?.block_on(fairness::run(&ctx, date))?;
            println!(
                "fairness {date}: {} decision rows, {} tests, {} concerns, {} reviews, {} rows suppressed",
                o.rows_in, o.tests, o.concerns, o.reviews, o.suppressed
            );
            for c in &o.concern_explanations {
                println!("concern: {c}");
            }
            for w in &o.warnings {
                eprintln!("warning: {w}");
            }
            println!("marts/{}/dt={date}/part-0.parquet", fairness::MART);
            fairness::gate(o.concerns, o.reviews, fail_on)?;
            Ok(())
        }
        Some(FairnessCommand::Audit(a)) => {
            let mut params = fairness::params(
                a.min_group_size.unwrap_or(cfg.min_group_size),
                &cfg.fairness,
            );
            if params.min_group_size < 2 {
                return Err(Error::Config("--min-group-size must be at least 2".into()).into());
            }
            params.noun = "people".into();
            if let Some(i) = a.intersections {
                params.intersections = match i {
                    IntersectionsArg::Pairwise => fairness::dims::Intersections::Pairwise,
                    IntersectionsArg::None => fairness::dims::Intersections::None,
                };
            }
            // only the references given here are checked: those of
            // attune.toml name the nightly's attributes, which a file need
            // not have
            for r in &a.references {
                let (dim, group) = r.split_once('=').ok_or_else(|| {
                    Error::Config(format!(
                        "--reference {r:?}: write DIMENSION=GROUP, e.g. age_band=25-34"
                    ))
                })?;
                params
                    .intersections
                    .check_references(&a.groups, [&dim.to_string()])
                    .map_err(|m| Error::Config(format!("--reference {r:?}: {m}")))?;
                params
                    .reference_groups
                    .insert(dim.to_string(), group.to_string());
            }
            let fail_on = match a.fail_on {
                Some(FailOnArg::Never) => FairnessFailOn::Never,
                Some(FailOnArg::Concern) => FairnessFailOn::Concern,
                Some(FailOnArg::Review) => FairnessFailOn::Review,
                None => cfg.fairness.fail_on,
            };
            let job = fairness::file::FileAudit {
                input: a.input.clone(),
                groups: a.groups.clone(),
                label: a.label.clone(),
                prediction: a.prediction.clone(),
                score: a.score.clone(),
                outcomes: a.outcomes.clone(),
                subject: a.subject.clone(),
                out: a.out.clone(),
                params,
            };
            let o = runtime()?.block_on(fairness::file::run(&job))?;
            for w in &o.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!(
                "audited {} rows: {} tests, {} concerns, {} reviews",
                o.rows_in, o.tests, o.concerns, o.reviews
            );
            println!("{}", o.out.display());
            fairness::gate(o.concerns, o.reviews, fail_on)?;
            Ok(())
        }
    }
}

fn print_ingest(o: &ingest::IngestOutcome) {
    println!(
        "{:<24} {:>10} {:>10} {:>11} {:>8} {:>7} {:>10}",
        "table", "read", "written", "quarantined", "consent", "erased", "duplicates"
    );
    for t in &o.tables {
        println!(
            "{:<24} {:>10} {:>10} {:>11} {:>8} {:>7} {:>10}",
            t.table,
            t.rows_read,
            t.rows_written,
            t.quarantined,
            t.consent_excluded,
            t.erased,
            t.duplicates
        );
    }
    for w in o.warnings.iter().take(10) {
        eprintln!("warning: {w}");
    }
    if o.warnings.len() > 10 {
        eprintln!(
            "warning: … and {} more (see the run manifest)",
            o.warnings.len() - 10
        );
    }
}

/// A job's seconds per phase, on stderr (stdout is the job's answer).
fn print_phases(job: &str, seconds: &std::collections::BTreeMap<String, f64>) {
    let phases: Vec<String> = seconds
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}s"))
        .collect();
    eprintln!("{job}: {}", phases.join(", "));
}

fn print_empathy(o: &attune::empathy::EmpathyOutcome) {
    print_phases("empathy", &o.seconds);
    println!("{}", o.headline.sentence);
    println!();
    println!("component               weight  available  contacts");
    for c in &o.components {
        println!(
            "{:<23} {:>6.2}  {:<9}  {:>8}{}",
            c.component,
            c.weight,
            if c.available { "yes" } else { "no" },
            c.contacts,
            c.note
                .as_deref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
    }
    if let Some(a) = &o.cronbach_alpha {
        println!(
            "\nSERVQUAL empathy items: Cronbach's alpha {:.3} (95% CI {:.3}-{:.3}, {} respondents): {}",
            a.alpha, a.ci_lower, a.ci_upper, a.respondents, a.wording
        );
    }
    println!("\noutcome check (index of month m vs month m+1):");
    for v in o.validation.iter().filter(|v| v.measure == "index") {
        println!("  {:<24} {}", v.family.name(), v.wording);
    }
    println!("  {}", o.validation_summary);
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "\nmarts/empathy_index: {} rows, marts/empathy_contacts: {} rows",
        o.index_rows, o.contact_rows
    );
}
