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
