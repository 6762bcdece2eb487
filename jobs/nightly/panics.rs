//! A job that panics fails like any other job: its record in the manifest
//! says `failed` with the panic's message, the manifest is finished, and the
//! process exits with code 1 instead of Rust's 101 (which no scheduler's
//! documentation of attune mentions). A panic is a bug in attune or a
//! library (for example a decoder tripping over a corrupt Parquet file), so
//! it becomes [`Error::Internal`].
//!
//! A panic's message may quote the value that tripped it (Rust's own say
//! "… of `<the string>`" for a bad slice of text, `unwrap` shows the error's
//! value), so what reaches the manifest, the log or stderr is [`scrub`]bed:
//! redacted as ingest redacts free text and cut before its first quote.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::{Error, Result};

/// Runs `fut`, turning a panic inside it into [`Error::Internal`].
pub async fn contain<T>(job: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => Err(Error::Internal(format!(
            "job `{job}` panicked: {}",
            scrub(&message(payload.as_ref()))
        ))),
    }
}

/// The error of a task that panicked or was cancelled, for
/// `.map_err(panics::joined("ingest worker"))`. tokio's own message would
/// quote the panic's payload as it is.
pub fn joined(what: &str) -> impl FnOnce(tokio::task::JoinError) -> Error + '_ {
    move |e| match e.try_into_panic() {
        Ok(payload) => Error::Internal(format!(
            "{what} panicked: {}",
            scrub(&message(payload.as_ref()))
        )),
        Err(e) => Error::Internal(format!("{what} was cancelled: {e}")),
    }
}

/// A panic payload's text (a `&str` or `String`), as it is.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Longest message kept, in characters.
const MAX_CHARS: usize = 240;

/// `msg` redacted as ingest redacts free text, cut before its first quoted
/// span (`` ` ``, `"`, or a `'` that is not an apostrophe inside a word:
/// Rust's messages quote the value that tripped them there, and an escaped
/// quote inside a span could not be told from its end), and cut to
/// [`MAX_CHARS`] characters; `…` marks a cut.
pub fn scrub(msg: &str) -> String {
    let redacted = crate::ingest::redact::Redactor::new()
        .redact(msg)
        .into_owned();
    let chars: Vec<char> = redacted.chars().collect();
    let quote = (0..chars.len()).find(|&i| match chars[i] {
        '`' | '"' => true,
        '\'' => {
            let word = |j: Option<usize>| {
                j.and_then(|j| chars.get(j))
                    .is_some_and(|c| c.is_alphanumeric())
            };
            !(word(i.checked_sub(1)) && word(Some(i + 1)))
        }
        _ => false,
    });
    let end = quote.unwrap_or(chars.len()).min(MAX_CHARS);
    let mut out: String = chars[..end].iter().collect();
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// Replaces Rust's panic message on stderr (which prints the payload as it
/// is, and as plain text under `--log-format json`) with one line of the
/// log's format: the panic's place, its [`scrub`]bed message, and the
/// backtrace when `RUST_BACKTRACE` asks for one (code locations only).
/// Written to stderr directly, not through `tracing`: a filter such as
/// `ATTUNE_LOG=off` must not silence a crash, and the progress bars'
/// writer takes a lock the panicking thread may hold.
pub fn install_hook(json: bool) {
    std::panic::set_hook(Box::new(move |info| {
        let place = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => backtrace.to_string(),
            _ => String::new(),
        };
        let line = hook_line(json, &place, &scrub(&message(info.payload())), &backtrace);
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }));
}

/// What the panic hook writes: a human line, or one JSON object with the
/// fields `tracing`'s JSON events have (`level`, `fields.message`, …).
fn hook_line(json: bool, place: &str, panic: &str, backtrace: &str) -> String {
    const WHAT: &str = "internal error (a bug in attune; please report it)";
    if json {
        let mut fields = serde_json::json!({ "message": WHAT, "place": place, "panic": panic });
        if !backtrace.is_empty() {
            fields["backtrace"] = backtrace.into();
        }
        serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "ERROR",
            "target": "attune::panic",
            "fields": fields,
        })
        .to_string()
    } else {
        let mut line = format!("error: {WHAT} at {place}: {panic}");
        if !backtrace.is_empty() {
            line.push('\n');
            line.push_str(backtrace);
        }
        line
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

    #[tokio::test]
    async fn a_panic_message_loses_the_values_it_quotes() {
        let text = String::from("Ruf an: 0171 2345678, Grüße Jürgen");
        let panicked = contain("voice", async move {
            let cut = &text[0..25];
            Ok(cut.len())
        })
        .await
        .expect_err("a cut inside a character panics");
        let Error::Internal(m) = panicked else {
            panic!("expected Internal");
        };
        assert!(m.contains("char boundary"), "{m}");
        for leaked in ["0171", "Jürgen", "Grüße"] {
            assert!(!m.contains(leaked), "{leaked} in {m}");
        }
    }

    #[test]
    fn scrub_keeps_the_words_and_drops_quoted_and_personal_values() {
        assert_eq!(
            scrub("index out of bounds: the len is 0 but the index is 3"),
            "index out of bounds: the len is 0 but the index is 3"
        );
        assert_eq!(
            scrub("called `Result::unwrap()` on an `Err` value: \"anna\""),
            "called …"
        );
        // an escaped quote does not end the span: everything after the first quote goes
        assert_eq!(scrub(r#"bad value "a \"Jürgen Müller\"""#), "bad value …");
        // an apostrophe inside a word is not a quote; one opening a span is
        assert_eq!(scrub("can't read 'O'Brien, Dublin'"), "can't read …");
        assert_eq!(
            scrub("call anna@example.com or 0171 2345678"),
            "call [EMAIL] or [PHONE]"
        );
        // redacted before it is cut: a number at the cut is not left half visible
        let long = format!("{} 0171 2345678", "x".repeat(MAX_CHARS - 3));
        let cut = scrub(&long);
        assert!(!cut.contains("017"), "{cut}");
        assert_eq!(cut.chars().count(), MAX_CHARS + 1, "{cut}");
        assert_eq!(scrub(&"x".repeat(MAX_CHARS)), "x".repeat(MAX_CHARS));
    }

    #[test]
    fn the_hook_writes_one_line_of_the_log_format() {
        let human = hook_line(false, "jobs/x.rs:7", "index out of bounds", "");
        assert_eq!(
            human,
            "error: internal error (a bug in attune; please report it) at jobs/x.rs:7: index out of bounds"
        );
        let json = hook_line(true, "jobs/x.rs:7", "called …", "");
        assert!(!json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["fields"]["panic"], "called …");
        assert_eq!(v["fields"]["place"], "jobs/x.rs:7");
        assert!(
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("internal error"))
        );
        assert!(v["fields"].get("backtrace").is_none());
    }

    #[tokio::test]
    async fn a_task_that_panicked_is_an_error_without_the_payload() {
        let e = tokio::task::spawn_blocking(|| {
            let text = "Grüße, Jürgen";
            panic!("could not parse {text:?}");
        })
        .await
        .map_err(joined("ingest worker"))
        .expect_err("panicked");
        let m = e.to_string();
        assert!(
            m.contains("ingest worker panicked: could not parse …"),
            "{m}"
        );
        assert!(!m.contains("Jürgen"), "{m}");
    }
}
