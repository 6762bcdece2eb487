//! The input contracts and the lake schema ingest writes.

use attune::schema::{Contracts, TABLES};

use crate::common::Root;

/// The schema of every lake table written by ingest equals the contract's lake schema.
#[tokio::test]
async fn lake_schema_equals_the_contract() {
    let root = Root::new();
    let contracts = Contracts::builtin().expect("contracts parse");
    let day = "2025-03-01";
    for contract in contracts.iter() {
        // A header-only export is enough: the schema comes from the contract, not the data.
        let header: Vec<&str> = contract.columns.iter().map(|c| c.name.as_str()).collect();
        root.land(
            &contract.table,
            day,
            "x.csv",
            format!("{}\n", header.join(",")).as_bytes(),
        );
    }
    root.ingest(&TABLES, &[day]).await;
    for contract in contracts.iter() {
        let path = root
            .path()
            .join("lake")
            .join(&contract.table)
            .join(format!("dt={day}"))
            .join("part-0.parquet");
        let file = std::fs::File::open(&path).expect("lake file");
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet");
        let got = builder.schema();
        assert_eq!(
            got.fields(),
            contract.lake_schema().fields(),
            "{}",
            contract.table
        );
    }
}

#[test]
fn every_table_of_the_design_has_a_contract_with_purposes() {
    let contracts = Contracts::builtin().expect("contracts parse");
    assert_eq!(TABLES.len(), 9);
    for t in TABLES {
        let c = contracts.get(t).expect("contract exists");
        assert!(!c.primary_key.is_empty(), "{t}");
        for col in &c.columns {
            assert!(!col.purpose.trim().is_empty(), "{t}.{}", col.name);
        }
    }
}

/// Ingest writes a Parquet dictionary only for columns whose values repeat:
/// ids, pseudonyms and timestamps are plain (a dictionary of nearly
/// distinct values is the values once more), a channel is a dictionary.
/// Every column but a pseudonym that is not the key keeps its range, in
/// the chunk's statistics and the page index: the customer's pseudonym
/// spans the whole hex range and prunes nothing.
#[tokio::test]
async fn ids_and_timestamps_are_written_without_a_dictionary() {
    let root = Root::new();
    let day = "2025-03-01";
    let mut csv = String::from(
        "order_id,customer_id,ordered_at,total_amount,discount_amount,currency,channel,item_count,refunded\n",
    );
    for i in 0..200 {
        csv.push_str(&format!(
            "O{i:05},C{:04},2025-03-01 07:{:02}:{:02},6.00,0.00,EUR,in_store,2,false\n",
            i % 150,
            i / 60,
            i % 60
        ));
    }
    root.land("orders", day, "x.csv", csv.as_bytes());
    root.ingest(&["orders"], &[day]).await;
    let path = root.path().join("lake/orders/dt=2025-03-01/part-0.parquet");
    let file = std::fs::File::open(&path).expect("lake file");
    let meta = parquet::file::reader::SerializedFileReader::new(file).expect("parquet");
    let meta = parquet::file::reader::FileReader::metadata(&meta);
    let group = meta.row_group(0);
    let has_dictionary = |name: &str| {
        let col = group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("{name} in the file"));
        col.dictionary_page_offset().is_some()
    };
    for plain in ["order_id", "customer_id", "ordered_at"] {
        assert!(!has_dictionary(plain), "{plain} has a dictionary");
    }
    for dictionary in ["channel", "currency"] {
        assert!(has_dictionary(dictionary), "{dictionary} has no dictionary");
    }
    let column = |name: &str| {
        let i = (group.columns().iter())
            .position(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("{name} in the file"));
        group.column(i)
    };
    let customer = column("customer_id");
    assert!(
        customer
            .statistics()
            .is_none_or(|s| s.min_bytes_opt().is_none()),
        "customer_id keeps a range: {:?}",
        customer.statistics()
    );
    for ranged in ["order_id", "ordered_at", "total_amount", "channel"] {
        let stats = column(ranged).statistics().expect("statistics");
        assert!(stats.min_bytes_opt().is_some(), "{ranged} has no minimum");
    }
    let stats = column("order_id").statistics().expect("statistics");
    assert_eq!(stats.min_bytes_opt(), Some(&b"O00000"[..]));
    assert_eq!(stats.max_bytes_opt(), Some(&b"O00199"[..]));
}

/// The compression of a lake file's column chunks, each checked alike.
fn lake_compression(path: &std::path::Path) -> parquet::basic::Compression {
    let file = std::fs::File::open(path).expect("lake file");
    let reader = parquet::file::reader::SerializedFileReader::new(file).expect("parquet");
    let meta = parquet::file::reader::FileReader::metadata(&reader);
    let codecs: std::collections::BTreeSet<String> = meta
        .row_groups()
        .iter()
        .flat_map(|g| g.columns())
        .map(|c| format!("{:?}", c.compression()))
        .collect();
    assert_eq!(
        codecs.len(),
        1,
        "one codec in {}: {codecs:?}",
        path.display()
    );
    meta.row_group(0).column(0).compression()
}

/// On a local root the lake's and the quarantine's files are uncompressed
/// (`compression = "auto"`, the default), and `compression = "zstd"` in
/// the config makes them zstd: the setting reaches ingest's writers
/// through the job context.
#[tokio::test]
async fn the_lake_is_compressed_as_the_config_says() {
    use attune::config::{Key, ValidConfig};
    use attune::context::{JobContext, KeyMode};
    use attune::parquet_io::Codec;

    let day = chrono::NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
    let orders = b"order_id,customer_id,ordered_at,total_amount,discount_amount,currency,channel,item_count,refunded\n\
O1,C1,2025-03-01 09:00:00,3.50,0,EUR,in_store,1,false\n\
O2,C1,2025-03-01 09:05:00,twelve,0,EUR,in_store,1,false\n";
    for (setting, want) in [
        (None, Codec::None),
        (Some(Codec::None), Codec::None),
        (Some(Codec::Zstd), Codec::Zstd),
    ] {
        let root = Root::new();
        root.land("orders", "2025-03-01", "x.csv", orders);
        let cfg = ValidConfig {
            root: root.path().to_string_lossy().into_owned(),
            compression: setting,
            ingest: attune::config::IngestConfig {
                tables: vec!["orders".into()],
                ..ValidConfig::default().ingest
            },
            ..ValidConfig::default()
        };
        let mut ctx = JobContext::open(cfg, KeyMode::NotNeeded).expect("context");
        ctx.key = Some(Key::new(crate::common::KEY.as_bytes().to_vec()));
        assert_eq!(ctx.storage.codec(), want);
        attune::ingest::run(&ctx, &[day]).await.expect("ingest");
        for area in ["lake", "quarantine"] {
            let path = root
                .path()
                .join(format!("{area}/orders/dt=2025-03-01/part-0.parquet"));
            assert_eq!(
                lake_compression(&path),
                want.parquet(),
                "{area}, {setting:?}"
            );
        }
        assert_eq!(root.rows("lake", "orders", "2025-03-01"), 1);
        assert_eq!(root.rows("quarantine", "orders", "2025-03-01"), 1);
    }
}
