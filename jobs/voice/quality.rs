//! The scorer's report card, for `marts/model_metrics` (model
//! `sentiment`): how well the sentiment of a review's words agrees with
//! the stars the same reviewer gave (Spearman's rank correlation, overall
//! and per language), and how many messages were scored or not, by source,
//! language and reason. A count below `min_group_size` is written as NULL:
//! the language of a message says something about its author. For the same
//! reason a language with fewer messages than that has no key of its own (a
//! key `language=tr` would tell that someone wrote in Turkish even with its
//! count hidden): its messages are counted under `language=other`, and its
//! reviews only in the overall correlation.

use std::collections::BTreeMap;

use datafusion::prelude::SessionContext;

use super::columns::{self, opt_f64, opt_i64, opt_str};
use super::stats::spearman;
use super::{RunParams, collect};
use crate::Result;
use crate::mart::Metric;

const MODEL: &str = "sentiment";

/// Reviews with scored words and a rating: (stars, sentiment, language).
const REVIEWS_SQL: &str = "SELECT f.rating, f.sentiment, f.language \
     FROM feedback_scored AS f \
     WHERE f.dt = $run_date AND f.source = 'review' AND f.scored AND f.rating IS NOT NULL \
     ORDER BY f.message_id";

/// Messages by source, scored flag, language and reason.
const COUNTS_SQL: &str = "SELECT f.source, f.scored, f.language, f.unscored_reason, count(*) AS messages \
     FROM feedback_scored AS f WHERE f.dt = $run_date \
     GROUP BY f.source, f.scored, f.language, f.unscored_reason \
     ORDER BY f.source, f.scored, f.language, f.unscored_reason";

/// A review's stars, sentiment and language.
#[derive(Debug, Clone, PartialEq)]
pub struct RatedReview {
    pub stars: f64,
    pub sentiment: f64,
    pub language: Option<String>,
}

/// One group of messages: (source, scored, language, reason) and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCount {
    pub source: String,
    pub scored: bool,
    pub language: Option<String>,
    pub reason: Option<String>,
    pub messages: u64,
}

/// Spearman's correlation between stars and sentiment, overall (key `all`)
/// and per language with at least `min_group_size` reviews (key
/// `language=xx`), each with its n.
pub fn agreement_metrics(reviews: &[RatedReview], min_group_size: usize) -> Vec<Metric> {
    let mut groups: BTreeMap<String, Vec<&RatedReview>> = BTreeMap::new();
    for r in reviews {
        groups.entry("all".into()).or_default().push(r);
        if let Some(l) = &r.language {
            groups.entry(format!("language={l}")).or_default().push(r);
        }
    }
    groups.retain(|key, rs| key == "all" || rs.len() >= min_group_size);
    if groups.is_empty() {
        groups.insert("all".into(), Vec::new());
    }
    let mut out = Vec::new();
    for (key, rs) in groups {
        let n = rs.len();
        let stars: Vec<f64> = rs.iter().map(|r| r.stars).collect();
        let sentiment: Vec<f64> = rs.iter().map(|r| r.sentiment).collect();
        let (value, detail) = if n < min_group_size {
            (
                None,
                format!("fewer than {min_group_size} reviews with scored words: not computed"),
            )
        } else {
            match spearman(&stars, &sentiment) {
                Some(rho) => (
                    Some(rho),
                    format!(
                        "Spearman's rank correlation (average ranks for ties) between a review's stars and the sentiment of its words, {n} reviews"
                    ),
                ),
                None => (
                    None,
                    "undefined: the stars or the sentiment are constant".to_string(),
                ),
            }
        };
        out.push(Metric {
            model: MODEL.into(),
            metric: "spearman_rating".into(),
            key: Some(key.clone()),
            value,
            detail: Some(detail),
        });
        let shown_n = (n >= min_group_size).then_some(n as f64);
        out.push(Metric {
            model: MODEL.into(),
            metric: "spearman_rating_n".into(),
            key: Some(key),
            value: shown_n,
            detail: Some(if shown_n.is_some() {
                "reviews behind spearman_rating".into()
            } else {
                format!("suppressed: fewer than {min_group_size}")
            }),
        });
    }
    out
}

/// Messages scored and not scored, by source, language and reason; within a
/// source, status and reason, the languages with fewer than `min_group_size`
/// messages are summed under `language=other` (`none`, no language, stays).
pub fn count_metrics(counts: &[MessageCount], min_group_size: usize) -> Vec<Metric> {
    let min = min_group_size as u64;
    // In the order of the rows; a handful of keys, so a linear search is enough.
    let mut keyed: Vec<(String, u64)> = Vec::new();
    for c in counts {
        let language = match c.language.as_deref() {
            None => "none",
            Some(_) if c.messages < min => "other",
            Some(l) => l,
        };
        let key = if c.scored {
            format!("source={},status=scored,language={language}", c.source)
        } else {
            format!(
                "source={},status=unscored,reason={},language={language}",
                c.source,
                c.reason.as_deref().unwrap_or("unknown")
            )
        };
        match keyed.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += c.messages,
            None => keyed.push((key, c.messages)),
        }
    }
    keyed
        .into_iter()
        .map(|(key, messages)| {
            let shown = messages >= min;
            Metric {
                model: MODEL.into(),
                metric: "messages".into(),
                key: Some(key),
                value: shown.then_some(messages as f64),
                detail: Some(if shown {
                    "messages in feedback_scored".into()
                } else {
                    format!("suppressed: fewer than {min_group_size}")
                }),
            }
        })
        .collect()
}

/// Reads the rated reviews and the message counts of the run date.
pub async fn read(
    session: &SessionContext,
    params: &RunParams,
) -> Result<(Vec<RatedReview>, Vec<MessageCount>)> {
    let mut reviews = Vec::new();
    for b in collect(session, REVIEWS_SQL, params, "voice/quality").await? {
        let rating = columns::ints(&b, "rating")?;
        let sentiment = columns::floats(&b, "sentiment")?;
        let language = columns::strings(&b, "language")?;
        for i in 0..b.num_rows() {
            if let (Some(r), Some(s)) = (opt_i64(&rating, i), opt_f64(&sentiment, i)) {
                reviews.push(RatedReview {
                    stars: r as f64,
                    sentiment: s,
                    language: opt_str(&language, i).map(str::to_string),
                });
            }
        }
    }
    let mut counts = Vec::new();
    for b in collect(session, COUNTS_SQL, params, "voice/quality").await? {
        let source = columns::strings(&b, "source")?;
        let scored = columns::bools(&b, "scored")?;
        let language = columns::strings(&b, "language")?;
        let reason = columns::strings(&b, "unscored_reason")?;
        let messages = columns::ints(&b, "messages")?;
        for i in 0..b.num_rows() {
            counts.push(MessageCount {
                source: opt_str(&source, i).unwrap_or_default().to_string(),
                scored: scored.value(i),
                language: opt_str(&language, i).map(str::to_string),
                reason: opt_str(&reason, i).map(str::to_string),
                messages: opt_i64(&messages, i).unwrap_or(0).max(0) as u64,
            });
        }
    }
    Ok((reviews, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(stars: f64, sentiment: f64, lang: &str) -> RatedReview {
        RatedReview {
            stars,
            sentiment,
            language: Some(lang.into()),
        }
    }

    #[test]
    fn agreement_is_reported_overall_and_per_language_with_small_groups_withheld() {
        let mut reviews = Vec::new();
        for i in 0..12 {
            let stars = f64::from(i % 5 + 1);
            reviews.push(review(stars, stars / 5.0 - 0.5, "en"));
        }
        for i in 0..3 {
            reviews.push(review(f64::from(i + 1), 0.1, "de"));
        }
        let m = agreement_metrics(&reviews, 10);
        let get = |metric: &str, key: &str| {
            m.iter()
                .find(|x| x.metric == metric && x.key.as_deref() == Some(key))
                .unwrap_or_else(|| panic!("{metric} {key}"))
        };
        let en = get("spearman_rating", "language=en")
            .value
            .expect("computed");
        assert!((en - 1.0).abs() < 1e-12, "{en}");
        assert_eq!(get("spearman_rating_n", "language=en").value, Some(12.0));
        assert!(
            m.iter().all(|x| x.key.as_deref() != Some("language=de")),
            "3 German reviews: no key of their own"
        );
        let stars: Vec<f64> = reviews.iter().map(|r| r.stars).collect();
        let sent: Vec<f64> = reviews.iter().map(|r| r.sentiment).collect();
        assert_eq!(get("spearman_rating", "all").value, spearman(&stars, &sent));
        assert_eq!(get("spearman_rating_n", "all").value, Some(15.0));
        let none = agreement_metrics(&[], 10);
        assert_eq!(none.len(), 2);
        assert!(none.iter().all(|x| x.value.is_none()));
    }

    #[test]
    fn counts_are_keyed_and_small_ones_withheld() {
        let counts = [
            MessageCount {
                source: "survey".into(),
                scored: true,
                language: Some("es".into()),
                reason: None,
                messages: 40,
            },
            MessageCount {
                source: "review".into(),
                scored: false,
                language: Some("fr".into()),
                reason: Some("unsupported_language".into()),
                messages: 2,
            },
        ];
        let m = count_metrics(&counts, 10);
        assert_eq!(
            m[0].key.as_deref(),
            Some("source=survey,status=scored,language=es")
        );
        assert_eq!(m[0].value, Some(40.0));
        assert_eq!(
            m[1].key.as_deref(),
            Some("source=review,status=unscored,reason=unsupported_language,language=other")
        );
        assert_eq!(m[1].value, None);
    }

    fn unsupported(source: &str, language: &str, messages: u64) -> MessageCount {
        MessageCount {
            source: source.into(),
            scored: false,
            language: Some(language.into()),
            reason: Some("unsupported_language".into()),
            messages,
        }
    }

    #[test]
    fn a_hidden_count_does_not_show_its_language_in_the_key() {
        let m = count_metrics(&[unsupported("review", "tr", 1)], 10);
        let keys: Vec<&str> = m.iter().filter_map(|x| x.key.as_deref()).collect();
        assert!(
            keys.iter()
                .all(|k| k.split(',').all(|part| part != "language=tr")),
            "{keys:?}"
        );
        assert_eq!(
            keys,
            ["source=review,status=unscored,reason=unsupported_language,language=other"]
        );
        assert_eq!(m[0].value, None);
    }

    #[test]
    fn small_languages_are_summed_under_other_and_large_ones_keep_their_key() {
        let mut scored_de = unsupported("survey", "de", 3);
        scored_de.scored = true;
        scored_de.reason = None;
        let counts = [
            unsupported("review", "ar", 4),
            unsupported("review", "fr", 25),
            unsupported("review", "tr", 7),
            unsupported("survey", "tr", 2),
            scored_de,
        ];
        let m = count_metrics(&counts, 10);
        let got: Vec<(&str, Option<f64>)> = m
            .iter()
            .map(|x| (x.key.as_deref().unwrap_or_default(), x.value))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "source=review,status=unscored,reason=unsupported_language,language=other",
                    Some(11.0)
                ),
                (
                    "source=review,status=unscored,reason=unsupported_language,language=fr",
                    Some(25.0)
                ),
                (
                    "source=survey,status=unscored,reason=unsupported_language,language=other",
                    None
                ),
                ("source=survey,status=scored,language=other", None),
            ]
        );
    }
}
