//! The one error type of the library.
//!
//! Variants keep bad input, bad configuration and policy decisions apart
//! from `Internal` (a bug in attune), so `main` can map each to its own exit
//! code and a scheduler can tell "fix your export" from "file a bug".

use std::path::PathBuf;

/// Result with attune's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file or a flag is wrong.
    #[error("config: {0}")]
    Config(String),

    /// A schema contract under `schemas/` is malformed.
    #[error("contract {table}: {reason}")]
    Contract { table: String, reason: String },

    /// A whole input file is unusable (not a single bad row: those are quarantined).
    #[error("{file}: {reason}")]
    Input { file: String, reason: String },

    /// Input the run needs does not exist.
    #[error("missing input: {what}. {hint}")]
    MissingInput { what: String, hint: String },

    /// A policy refuses to run (no pseudonymization key, …).
    #[error("policy: {0}")]
    Policy(String),

    /// Local file I/O, with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The object store (local folder, S3, GCS, Azure) failed.
    #[error("storage: {0}")]
    Storage(object_store::Error),

    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// Arrow failed while building a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    /// DataFusion failed planning or running SQL.
    #[error("sql: {0}")]
    DataFusion(#[source] datafusion::error::DataFusionError),

    /// A SQL model does not parse, plan or run.
    #[error("model {model}: {reason}")]
    Model { model: String, reason: String },

    /// A data test declared on a model failed.
    #[error("data test failed: {model}.{column} {test}: {rows} offending rows")]
    DataTest {
        model: String,
        column: String,
        test: String,
        rows: u64,
    },

    /// An audit found what its `fail_on` setting refuses (e.g. a fairness
    /// concern): the run itself worked, its outputs are written, and the
    /// scheduler should alert. Exit code 3.
    #[error(
        "{job} audit gate: {findings} finding(s) at or above the configured fail_on level (the outputs are written; see the {job} mart and the report)"
    )]
    AuditGate { job: String, findings: usize },

    /// Another run holds the data root's lock.
    #[error("locked: {0}")]
    Locked(String),

    /// A bug: an invariant attune relies on did not hold.
    #[error("internal error (a bug in attune): {0}")]
    Internal(String),
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Error {
        match e {
            // a task of the store that panicked: its message would quote
            // the payload as it is (see nightly::panics)
            object_store::Error::JoinError { source } => {
                crate::nightly::panics::joined("a storage task")(source)
            }
            other => Error::Storage(other),
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Error {
        use datafusion::error::DataFusionError as E;
        match e {
            // a task of DataFusion's (its Parquet writers) that panicked:
            // the JoinError's message would quote the payload as it is
            E::ExecutionJoin(join) => crate::nightly::panics::joined("a DataFusion task")(*join),
            E::Context(context, inner) => match Error::from(*inner) {
                Error::DataFusion(inner) => Error::DataFusion(inner.context(context)),
                scrubbed => scrubbed,
            },
            E::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(inner) => Error::from(inner),
                Err(shared) if matches!(shared.find_root(), E::ExecutionJoin(_)) => {
                    Error::Internal("a DataFusion task panicked".into())
                }
                Err(shared) => Error::DataFusion(E::Shared(shared)),
            },
            other => Error::DataFusion(other),
        }
    }
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A whole-file input problem.
    pub fn input(file: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Input {
            file: file.into(),
            reason: reason.into(),
        }
    }
}

impl Error {
    /// The process exit code documented in the README and `attune --help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Contract { .. } | Error::Policy(_) => 2,
            Error::AuditGate { .. } => 3,
            Error::Locked(_) => 4,
            Error::MissingInput { .. } | Error::Input { .. } => 5,
            // An unusable data root (no permission, bad credentials) needs a
            // person, like a missing export: retrying, as 1 invites, cannot help.
            Error::Storage(
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. },
            ) => 5,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => 5,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_root_is_input_not_a_failed_job() {
        let denied = || Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        let storage = Error::Storage(object_store::Error::PermissionDenied {
            path: "runs/.lock".into(),
            source: denied(),
        });
        assert_eq!(storage.exit_code(), 5);
        let auth = Error::Storage(object_store::Error::Unauthenticated {
            path: "lake".into(),
            source: denied(),
        });
        assert_eq!(auth.exit_code(), 5);
        assert_eq!(
            Error::io(
                "/data/runs",
                std::io::Error::from(std::io::ErrorKind::PermissionDenied)
            )
            .exit_code(),
            5
        );
        let missing = Error::Storage(object_store::Error::NotFound {
            path: "lake/orders/x.parquet".into(),
            source: denied(),
        });
        assert_eq!(
            missing.exit_code(),
            1,
            "a file gone during a job is a failed job"
        );
        assert_eq!(Error::Config("x".into()).exit_code(), 2);
        assert_eq!(Error::Locked("x".into()).exit_code(), 4);
        assert_eq!(Error::Internal("x".into()).exit_code(), 1);
    }

    /// A panic inside one of DataFusion's own tasks reaches attune as a
    /// `DataFusionError` holding the task's `JoinError`, alone or wrapped
    /// in context: its message leaves the value the panic quoted behind.
    #[tokio::test]
    async fn a_datafusion_task_that_panicked_is_scrubbed() {
        use datafusion::error::DataFusionError as E;
        let panicked = || async {
            tokio::spawn(async { panic!("bad row `ana@example.es 4111 1111 1111 1111`") })
                .await
                .expect_err("the task panicked")
        };
        let errors = [
            E::ExecutionJoin(Box::new(panicked().await)),
            E::ExecutionJoin(Box::new(panicked().await)).context("writing marts/x"),
            E::Shared(std::sync::Arc::new(E::ExecutionJoin(Box::new(
                panicked().await,
            )))),
        ];
        for e in errors {
            let shown = Error::from(e).to_string();
            assert!(shown.contains("panicked"), "{shown}");
            assert!(
                !shown.contains("ana@") && !shown.contains("4111"),
                "{shown}"
            );
        }
        let plain = Error::from(E::Plan("no table x".into()).context("model m"));
        assert!(matches!(plain, Error::DataFusion(_)), "{plain}");
        assert!(plain.to_string().contains("no table x"), "{plain}");
    }
}
