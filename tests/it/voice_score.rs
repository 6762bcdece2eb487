//! `attune voice score` end to end through the binary (CSV and Parquet), and
//! the scorer against the demo generator's intended tone.

use std::sync::Arc;

use attune::voice::score::{Label, Scorer};
use datafusion::arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::common::{attune, demo_lake, files_under, read_parquet};

/// Messages with known outcomes: (id, text, expected label or None for unscored).
const ROWS: &[(&str, &str, Option<&str>)] = &[
    (
        "r1",
        "Lovely staff, the best croissants in town!",
        Some("positive"),
    ),
    (
        "r2",
        "Waited forever and the coffee was cold, never again.",
        Some("negative"),
    ),
    ("r3", "Do you have oat milk?", Some("neutral")),
    ("r4", "El café estaba buenísimo, gracias", Some("positive")),
    (
        "r5",
        "Der Kuchen war leider trocken und viel zu teuer.",
        Some("negative"),
    ),
    ("r6", "Le café était froid et le service très lent.", None),
    ("r7", "", None),
    (
        "r8",
        "Great, another cold coffee. Call me on [PHONE], \"now\".",
        Some("negative"),
    ),
];

fn write_csv(path: &std::path::Path) {
    let mut w = csv::Writer::from_path(path).expect("csv");
    w.write_record(["id", "channel", "text"]).expect("header");
    for (id, text, _) in ROWS {
        w.write_record([id, "web", text]).expect("row");
    }
    w.flush().expect("flush");
}

#[test]
fn voice_score_csv_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("comments.csv");
    let out = dir.path().join("scored.csv");
    write_csv(&input);
    let run = attune()
        .args([
            "voice",
            "score",
            "--text-column",
            "text",
            "--id-column",
            "id",
        ])
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "exit {:?}: {stderr}", run.status);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        out.display().to_string()
    );
    assert!(stderr.contains("scored 6 of 8 rows"), "{stderr}");
    assert!(
        stderr.contains("unsupported_language: 1") && stderr.contains("no_text: 1"),
        "{stderr}"
    );

    let mut r = csv::Reader::from_path(&out).expect("output csv");
    let header: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        header,
        [
            "row",
            "id",
            "language",
            "scored",
            "unscored_reason",
            "sentiment",
            "label",
            "frustration",
            "confusion",
            "anxiety",
            "anger",
            "joy",
            "gratitude"
        ]
    );
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("record")).collect();
    assert_eq!(rows.len(), ROWS.len(), "one output row per input row");
    for (i, ((id, text, want), got)) in ROWS.iter().zip(&rows).enumerate() {
        assert_eq!(&got[0], i.to_string().as_str());
        assert_eq!(&got[1], *id, "ids stay in input order");
        match want {
            Some(label) => {
                assert_eq!(&got[3], "true", "{text:?}");
                assert_eq!(&got[6], *label, "{text:?}");
                let s: f64 = got[5].parse().expect("sentiment is a number");
                assert!((-1.0..=1.0).contains(&s));
                for k in 7..13 {
                    let e: f64 = got[k].parse().expect("emotion is a number");
                    assert!((0.0..=1.0).contains(&e));
                }
            }
            None => {
                assert_eq!(&got[3], "false", "{text:?}");
                assert_eq!(&got[6], "unscored");
                assert_eq!(&got[5], "", "unscored rows have no sentiment, not 0");
                assert!((7..13).all(|k| got[k].is_empty()));
            }
        }
    }
    assert_eq!(&rows[5][2], "fr");
    assert_eq!(&rows[5][4], "unsupported_language");
    assert_eq!(&rows[6][4], "no_text");
    // No text is copied to the output, and no partial file is left.
    let written = std::fs::read_to_string(&out).expect("read");
    assert!(!written.contains("croissants") && !written.contains("PHONE"));
    assert_eq!(
        files_under(dir.path()).len(),
        2,
        "{:?}",
        files_under(dir.path())
    );
}

#[test]
fn voice_score_parquet_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("comments.parquet");
    let out = dir.path().join("scored.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("review_id", DataType::Int64, false),
        Field::new("body", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (0..ROWS.len() as i64).map(|i| 1000 + i).collect();
    // A null text, as well as an empty one.
    let texts: Vec<Option<&str>> = ROWS
        .iter()
        .enumerate()
        .map(|(i, (_, t, _))| if i == 6 { None } else { Some(*t) })
        .collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(texts)),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(&input).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");

    let run = attune()
        .args([
            "voice",
            "score",
            "--text-column",
            "body",
            "--id-column",
            "review_id",
        ])
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let batches = read_parquet(&out);
    let b =
        datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
    let names: Vec<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "row",
            "review_id",
            "language",
            "scored",
            "unscored_reason",
            "sentiment",
            "label",
            "frustration",
            "confusion",
            "anxiety",
            "anger",
            "joy",
            "gratitude"
        ]
    );
    assert_eq!(b.num_rows(), ROWS.len());
    let col = |name: &str| b.column_by_name(name).expect("column").clone();
    let row = col("row");
    let row = row.as_any().downcast_ref::<UInt64Array>().expect("u64");
    let id = col("review_id");
    let id = id
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("id as text");
    let scored = col("scored");
    let scored = scored
        .as_any()
        .downcast_ref::<BooleanArray>()
        .expect("bool");
    let label = col("label");
    let label = label.as_any().downcast_ref::<StringArray>().expect("label");
    let sentiment = col("sentiment");
    let sentiment = sentiment
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("f64");
    let joy = col("joy");
    let joy = joy.as_any().downcast_ref::<Float64Array>().expect("f64");
    for (i, (_, text, want)) in ROWS.iter().enumerate() {
        assert_eq!(row.value(i), i as u64);
        assert_eq!(id.value(i), (1000 + i).to_string());
        match want {
            Some(l) => {
                assert!(scored.value(i), "{text:?}");
                assert_eq!(label.value(i), *l, "{text:?}");
                assert!(sentiment.is_valid(i) && joy.is_valid(i));
            }
            None => {
                assert!(!scored.value(i), "{text:?}");
                assert!(
                    sentiment.is_null(i) && joy.is_null(i),
                    "unscored is null, not 0"
                );
            }
        }
    }
}

#[test]
fn voice_score_reports_a_missing_column_and_a_bad_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("comments.csv");
    write_csv(&input);
    let run = attune()
        .args(["voice", "score", "--text-column", "comment"])
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out.csv"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("no column `comment`") && stderr.contains("id, channel, text"),
        "{stderr}"
    );
    assert!(!dir.path().join("out.csv").exists());

    let run = attune()
        .args(["voice", "score", "--text-column", "text"])
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out.xlsx"))
        .output()
        .expect("runs");
    assert_eq!(run.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&run.stderr).contains(".csv, .parquet"));
}

/// The intended tone of a generated comment follows its survey score (see
/// jobs/generate/write.rs: NPS 9-10 and CSAT 4-5 positive, NPS 0-6 and CSAT
/// 1-2 negative) or review rating (5 stars positive, 1-2 negative). The
/// scorer's label should agree most of the time. This is a sanity check: the
/// headline figures come from the hand-written set, which is independent of
/// the generator.
#[test]
fn scorer_agrees_with_the_generators_intended_tone() {
    let (root, _) = demo_lake();
    let scorer = Scorer::new();
    let mut agree = [0usize; 3];
    let mut total = [0usize; 3];
    let mut unscored = 0usize;
    let mut seen = 0usize;
    let mut tally = |text: &str, tone: Option<Label>| {
        let Some(tone) = tone else { return };
        seen += 1;
        let s = scorer.score(text);
        if !s.scored {
            unscored += 1;
            return;
        }
        let k = match tone {
            Label::Positive => 0,
            Label::Negative => 2,
            _ => 1,
        };
        total[k] += 1;
        agree[k] += usize::from(s.label == tone);
    };
    for path in files_under(&root.join("lake/feedback")) {
        for b in read_parquet(&path) {
            let kind = b.column_by_name("survey_type").expect("survey_type");
            let kind = kind.as_any().downcast_ref::<StringArray>().expect("string");
            let score =
                cast(b.column_by_name("score").expect("score"), &DataType::Int64).expect("cast");
            let score = score.as_any().downcast_ref::<Int64Array>().expect("i64");
            let comment = b.column_by_name("comment").expect("comment");
            let comment = comment
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("string");
            for i in 0..b.num_rows() {
                if comment.is_null(i) || score.is_null(i) {
                    continue;
                }
                let tone = match (kind.value(i), score.value(i)) {
                    ("nps", 9..) | ("csat", 4..) => Some(Label::Positive),
                    ("nps", ..=6) | ("csat", ..=2) => Some(Label::Negative),
                    _ => None,
                };
                tally(comment.value(i), tone);
            }
        }
    }
    for path in files_under(&root.join("lake/reviews")) {
        for b in read_parquet(&path) {
            let rating = cast(
                b.column_by_name("rating").expect("rating"),
                &DataType::Int64,
            )
            .expect("cast");
            let rating = rating.as_any().downcast_ref::<Int64Array>().expect("i64");
            let text = b.column_by_name("text").expect("text");
            let text = text.as_any().downcast_ref::<StringArray>().expect("string");
            for i in 0..b.num_rows() {
                if text.is_null(i) || rating.is_null(i) {
                    continue;
                }
                let tone = match rating.value(i) {
                    5 => Some(Label::Positive),
                    ..=2 => Some(Label::Negative),
                    _ => None,
                };
                tally(text.value(i), tone);
            }
        }
    }
    let rate = |k: usize| agree[k] as f64 / total[k].max(1) as f64;
    println!(
        "generated texts: {seen}, unscored {unscored}; agreement positive {:.3} ({}), negative {:.3} ({})",
        rate(0),
        total[0],
        rate(2),
        total[2]
    );
    assert!(
        total[0] > 200 && total[2] > 100,
        "enough generated texts: {total:?}"
    );
    // Measured when written: positive 0.938 of 322, negative 0.843 of 108,
    // 3 of 433 unscored (short texts).
    assert!(rate(0) >= 0.90, "positive agreement {:.3}", rate(0));
    assert!(rate(2) >= 0.80, "negative agreement {:.3}", rate(2));
    assert!(
        (unscored as f64) < 0.02 * seen as f64,
        "{unscored} of {seen} unscored"
    );
}
