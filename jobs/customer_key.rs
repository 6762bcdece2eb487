//! `customer_key(customer_id)`: a 64-bit hash of an id, as a BIGINT, for
//! grouping and joining customers.
//!
//! Grouping and joining a million customers by their 32-character
//! pseudonyms costs DataFusion a string hash, a copy into its group table
//! and a byte comparison per row, and holds the strings in every hash table;
//! a BIGINT key takes its primitive fast paths. The models group and join on
//! the key and carry the string only where it is output. Two customers share
//! a key with probability about n²/2⁶⁵ (3·10⁻⁸ at a million); `stg_customers`
//! tests the key unique, so a collision fails the transform instead of
//! merging two customers. Two marts keep the key, `customer_order_totals`
//! and `customer_web_totals` (running totals carried from night to night,
//! merged on it): a night
//! carries on only from totals recorded under the same attune version
//! (`transform::provenance`), so a change of the seed or of the hash needs a
//! new version, or each customer's carried totals and the night's would
//! fall apart. A test pins the keys of two ids for that reason. Elsewhere the
//! key lives only within a query, and DuckDB and Spark run the models with
//! `hash(customer_id)` in its place (see README).

use std::hash::BuildHasher;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use foldhash::fast::FixedState;

/// A fixed seed, so the same id has the same key in every run (and a
/// collision, however unlikely, shows up the same way each time).
const SEED: u64 = 0x6174_7475_6e65_6b79;

/// The function, for registering in a session.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(CustomerKey::default())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CustomerKey {
    signature: Signature,
}

impl Default for CustomerKey {
    fn default() -> Self {
        CustomerKey {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

/// The key of one id, as `customer_key(id)` computes it in SQL.
pub fn key_of(id: &str) -> i64 {
    // the bits as they are: a key only has to be equal for equal ids
    FixedState::with_seed(SEED).hash_one(id) as i64
}

impl ScalarUDFImpl for CustomerKey {
    fn name(&self) -> &str {
        "customer_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Array(a) => {
                let keys: Int64Array = a
                    .as_string::<i32>()
                    .iter()
                    .map(|id| id.map(key_of))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(keys) as ArrayRef))
            }
            ColumnarValue::Scalar(s) => {
                let key = match s {
                    ScalarValue::Utf8(id) => id.as_deref().map(key_of),
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Int64(key)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    #[test]
    fn ids_that_differ_anywhere_get_different_keys() {
        // fixtures' ids differ only in their last digit
        let a = key_of("c0000000000000000000000000000001");
        let b = key_of("c0000000000000000000000000000002");
        assert_ne!(a, b);
        assert_eq!(a, key_of("c0000000000000000000000000000001"), "stable");
        let keys: std::collections::HashSet<i64> =
            (0..100_000).map(|i| key_of(&format!("{i:032x}"))).collect();
        assert_eq!(keys.len(), 100_000, "no collision among 100,000 ids");
    }

    /// The keys of this version: the running totals (`customer_order_totals`,
    /// `customer_web_totals`) carry them from night to night, so a new
    /// seed, or a foldhash that hashes differently, must come with a new
    /// attune version (see the module).
    #[test]
    fn keys_are_those_the_carried_totals_were_merged_on() {
        assert_eq!(
            key_of("c0000000000000000000000000000001"),
            -4_700_748_807_699_788_656
        );
        assert_eq!(key_of(""), -1_871_872_899_734_409_796);
    }

    #[tokio::test]
    async fn sql_keys_ids_and_passes_nulls_through() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
        let ids = StringArray::from(vec![Some("aa"), None, Some("bb"), Some("aa")]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_udf(udf());
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        let out = ctx
            .sql("SELECT customer_key(id) AS k, customer_key('aa') AS a FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let keys = out[0].column(0).as_primitive::<Int64Type>();
        let scalar = out[0].column(1).as_primitive::<Int64Type>();
        assert_eq!(keys.value(0), key_of("aa"));
        assert!(keys.is_null(1));
        assert_ne!(keys.value(2), keys.value(0));
        assert_eq!(keys.value(3), keys.value(0));
        assert_eq!(
            scalar.value(0),
            keys.value(0),
            "a literal keys like a column"
        );
    }
}
