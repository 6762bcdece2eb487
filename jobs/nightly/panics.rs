//! A job that panics fails like any other job: its record in the manifest
//! says `failed` with the panic's message, the manifest is finished, and the
//! process exits with code 1 instead of Rust's 101 (which no scheduler's
//! documentation of attune mentions). A panic is a bug in attune or a
//! library (for example a decoder tripping over a corrupt Parquet file), so
//! it becomes [`Error::Internal`].

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::{Error, Result};

/// Runs `fut`, turning a panic inside it into [`Error::Internal`].
pub async fn contain<T>(job: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(Error::Internal(format!("job `{job}` panicked: {msg}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_internal_error_and_results_pass_through() {
        let ok = contain("a", async { Ok(7) }).await.expect("ok");
        assert_eq!(ok, 7);
        let err = contain("b", async { Err::<(), _>(Error::Config("x".into())) })
            .await
            .expect_err("err");
        assert!(matches!(err, Error::Config(_)));
        let v: Vec<u32> = Vec::new();
        let panicked = contain("segment", async move {
            let i = v.len() + 3;
            Ok(v[i])
        })
        .await
        .expect_err("panic");
        match panicked {
            Error::Internal(m) => {
                assert!(
                    m.contains("`segment` panicked") && m.contains("index out of bounds"),
                    "{m}"
                )
            }
            other => panic!("expected Internal, got {other:?}"),
        }
    }
}
