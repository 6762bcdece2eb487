//! The `attune` command: parses arguments, calls the library, maps the result
//! to an exit code. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use attune::config::{INIT_TEMPLATE, ValidConfig};
use attune::context::{JobContext, KeyMode};
use attune::nightly::{self, NightlyParams};
use attune::storage::Storage;
use attune::{Error, demo, generate, ingest, query};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a job failed (see the error and runs/<run_id>.json)
  2  usage or configuration error (bad flag, bad attune.toml, no pseudonymization key)
  3  an audit gate tripped: the run finished and wrote its outputs, but an audit found
     what its fail_on setting refuses (fairness.fail_on = concern: a fairness concern;
     see marts/fairness_audit)
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
    /// Run every job in order for a date (default: yesterday) or a range, under one lock.
    ///
    /// Example: attune nightly --from 2025-03-01 --to 2025-03-14
    Nightly {
        #[command(flatten)]
        dates: DatesArgs,
        /// Run only these jobs (repeatable).
        #[arg(long, value_name = "JOB")]
        only: Vec<String>,
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
    /// The date to process (YYYY-MM-DD). Default for nightly: yesterday (UTC).
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
    fn dates(&self, default_yesterday: bool) -> anyhow::Result<Vec<NaiveDate>> {
        if let (Some(f), Some(t)) = (self.from, self.to) {
            return Ok(nightly::date_range(f, t)?);
        }
        match self.date {
            Some(d) => Ok(vec![d]),
            None if default_yesterday => {
                let today = chrono::Utc::now().date_naive();
                Ok(vec![today.pred_opt().context("no day before today")?])
            }
            None => Err(Error::Config("give --date YYYY-MM-DD or --from/--to".into()).into()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<Error>() {
        Some(Error::Config(_) | Error::Contract { .. } | Error::Policy(_)) => 2,
        Some(Error::AuditGate { .. }) => 3,
        Some(Error::Locked(_)) => 4,
        Some(Error::MissingInput { .. } | Error::Input { .. }) => 5,
        _ => 1,
    }
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
        .with_writer(std::io::stderr);
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
            let dates = d.dates(false)?;
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::Required)?;
            let outcome = runtime()?.block_on(ingest::run(&ctx, &dates))?;
            print_ingest(&outcome);
            Ok(())
        }
        Command::Transform { date } => {
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::NotNeeded)?;
            let outcome = runtime()?.block_on(attune::transform::run(&ctx, *date))?;
            for m in &outcome.models {
                println!(
                    "{:<24} {:<6} {:>10} rows  {:>2} data tests  {:.2}s",
                    m.model, m.materialized, m.rows, m.data_tests, m.seconds
                );
            }
            Ok(())
        }
        Command::Nightly { dates, only } => {
            let dates = dates.dates(true)?;
            let ctx = JobContext::open(load_config(&cli)?, KeyMode::Required)?;
            let outcome = runtime()?.block_on(nightly::run(
                &ctx,
                &NightlyParams {
                    dates,
                    only: only.clone(),
                },
            ))?;
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
            let storage = Storage::open(&load_config(&cli)?.root)?;
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
            let storage = Storage::open(&load_config(&cli)?.root)?;
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
            eprintln!(
                "demo finished in {:.1}s (public demo key: pseudonyms are not protected)",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn run_fairness(cli: &Cli, f: &FairnessArgs) -> anyhow::Result<()> {
    use attune::config::FailOn;
    use attune::fairness;
    let cfg = load_config(cli)?;
    match &f.command {
        None => {
            let date = f.date.ok_or_else(|| {
                Error::Config("give --date YYYY-MM-DD (or the `audit` subcommand)".into())
            })?;
            let fail_on = cfg.fairness.fail_on;
            let ctx = JobContext::open(cfg, KeyMode::NotNeeded)?;
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
            for r in &a.references {
                let (dim, group) = r.split_once('=').ok_or_else(|| {
                    Error::Config(format!(
                        "--reference {r:?}: write DIMENSION=GROUP, e.g. age_band=25-34"
                    ))
                })?;
                params
                    .reference_groups
                    .insert(dim.to_string(), group.to_string());
            }
            let fail_on = match a.fail_on {
                Some(FailOnArg::Never) => FailOn::Never,
                Some(FailOnArg::Concern) => FailOn::Concern,
                Some(FailOnArg::Review) => FailOn::Review,
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
        "{:<24} {:>10} {:>10} {:>11} {:>8} {:>10}",
        "table", "read", "written", "quarantined", "consent", "duplicates"
    );
    for t in &o.tables {
        println!(
            "{:<24} {:>10} {:>10} {:>11} {:>8} {:>10}",
            t.table, t.rows_read, t.rows_written, t.quarantined, t.consent_excluded, t.duplicates
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
