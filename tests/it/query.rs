//! `attune query`: every format to stdout and to a file, and typos.

use attune::query::{self, OutputFormat};
use attune::storage::Storage;

use crate::common::{Root, read_parquet};

const DAY: &str = "2025-03-01";

async fn lake() -> (Root, Storage) {
    let root = Root::new();
    root.land(
        "orders",
        DAY,
        "orders.csv",
        b"order_id,customer_id,ordered_at,total_amount,currency,channel\n\
          O1,C1,2025-03-01 10:00:00,5,EUR,app\n\
          O2,C2,2025-03-01 11:00:00,7.5,EUR,online\n",
    );
    root.ingest(&["orders"], &[DAY]).await;
    let storage = Storage::open(root.path().to_str().expect("utf8")).expect("open");
    (root, storage)
}

const SQL: &str = "SELECT channel, sum(total_amount) AS revenue, dt FROM orders GROUP BY channel, dt ORDER BY channel";

#[tokio::test]
async fn results_go_to_files_in_every_format_whatever_the_file_name() {
    let (root, storage) = lake().await;
    let out = |name: &str| root.path().join(name);

    let csv = out("revenue [2025-03]?.csv");
    query::run(&storage, SQL, OutputFormat::Csv, Some(&csv))
        .await
        .expect("csv");
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv file"),
        "channel,revenue,dt\napp,5.0,2025-03-01\nonline,7.5,2025-03-01\n"
    );

    let json = out("revenue*.json");
    query::run(&storage, SQL, OutputFormat::Json, Some(&json))
        .await
        .expect("json");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .expect("json file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["channel"], "online");
    assert_eq!(lines[1]["revenue"], 7.5);

    let parquet = out("revenue.parquet");
    query::run(&storage, SQL, OutputFormat::Parquet, Some(&parquet))
        .await
        .expect("parquet");
    let rows: usize = read_parquet(&parquet).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);

    let table = out("revenue.txt");
    query::run(&storage, SQL, OutputFormat::Table, Some(&table))
        .await
        .expect("table");
    let text = std::fs::read_to_string(&table).expect("table file");
    assert!(text.contains("| online  | 7.5     |"), "{text}");

    let names: Vec<String> = std::fs::read_dir(root.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".partial")),
        "no partial file is left: {names:?}"
    );
}

#[tokio::test]
async fn a_typo_names_the_known_tables_and_writes_nothing() {
    let (root, storage) = lake().await;
    let csv = root.path().join("out.csv");
    let err = query::run(
        &storage,
        "SELECT * FROM order",
        OutputFormat::Csv,
        Some(&csv),
    )
    .await
    .expect_err("no table `order`")
    .to_string();
    assert!(err.contains("known tables: "), "{err}");
    assert!(err.contains("orders (lake)"), "{err}");
    assert!(!csv.exists());
    // a column typo: DataFusion's message, which names the column, and the tables
    let err = query::run(
        &storage,
        "SELECT chanel FROM orders",
        OutputFormat::Csv,
        Some(&csv),
    )
    .await
    .expect_err("no column `chanel`")
    .to_string();
    assert!(
        err.contains("chanel") && err.contains("known tables: "),
        "{err}"
    );
    assert!(!csv.exists());
    // no rows: still a CSV that names its columns
    query::run(
        &storage,
        "SELECT order_id, channel FROM orders WHERE total_amount < 0",
        OutputFormat::Csv,
        Some(&csv),
    )
    .await
    .expect("empty result");
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv"),
        "order_id,channel\n"
    );
    let printed = query::run(&storage, SQL, OutputFormat::Table, None)
        .await
        .expect("to stdout");
    assert_eq!(
        query::render(&printed, OutputFormat::Csv).expect("csv"),
        "channel,revenue,dt\napp,5.0,2025-03-01\nonline,7.5,2025-03-01\n"
    );
}

/// A partition folder without a file (a write that failed before its first
/// file) is not a partition: the table still reads, and a table with only
/// such folders is not listed.
#[tokio::test]
async fn an_empty_partition_folder_is_not_a_partition() {
    let (root, storage) = lake().await;
    std::fs::create_dir_all(root.path().join("lake/orders/dt=2025-03-02")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("marts/half_written/dt=2025-03-02")).expect("mkdir");
    let rows = query::run(
        &storage,
        "SELECT count(*) AS n FROM orders",
        OutputFormat::Table,
        None,
    )
    .await
    .expect("orders still read");
    assert_eq!(
        query::render(&rows, OutputFormat::Csv).expect("csv"),
        "n\n2\n"
    );
    let marts = attune::catalog::list_tables(&storage, "marts")
        .await
        .expect("tables");
    assert!(marts.iter().all(|t| t.name != "half_written"), "{marts:?}");
}
