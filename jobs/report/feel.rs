//! Section 2, how customers feel: NPS and CSAT trends with intervals,
//! sentiment by touchpoint, frustration themes and closing the loop.
//! From marts/voice_scores, voice_themes and voice_closed_loop.

use serde::Serialize;

use super::charts::{self, RowMark, TrendPoint};
use super::data::{Figure, Head, Light, Marts, MaybeChart, head};
use super::format::{count, fewer_than, interval, month_label, num, signed, words};
use super::table::Row;
use crate::Result;

/// Months shown in the trends.
const TREND_MONTHS: usize = 12;

/// Section 2.
#[derive(Debug, Clone, Serialize)]
pub struct Feel {
    pub head: Head,
    /// Headline figures: NPS, CSAT, closed loop.
    pub figures: Vec<Figure>,
    pub nps_chart: MaybeChart,
    pub csat_chart: MaybeChart,
    pub sentiment_chart: MaybeChart,
    /// What customers complain about most (phrases, never quotes).
    pub frustrations: Vec<Theme>,
    /// What customers praise most.
    pub praise: Vec<Theme>,
    /// Why no customer quotes are shown.
    pub quotes_note: String,
    /// The Empathy Index's six components over the last 12 months.
    pub empathy: Vec<Component>,
}

/// One component of the Empathy Index.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub name: String,
    pub value: String,
    pub interval: String,
    pub weight: String,
}

fn component_name(c: &str) -> String {
    match c {
        "index" => "Empathy Index".into(),
        "closing_the_loop" => "Closing the loop".into(),
        "human_when_it_matters" => "A person when it matters".into(),
        "perceived_empathy" => "Perceived empathy (customers' own rating)".into(),
        "tone" => "Tone of your replies".into(),
        other => {
            let w = words(other);
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => w,
            }
        }
    }
}

/// A theme: a phrase many customers used.
#[derive(Debug, Clone, Serialize)]
pub struct Theme {
    pub rank: u32,
    pub phrase: String,
    pub messages: String,
    pub share: String,
}

/// One headline score of the latest month.
struct Latest {
    month: String,
    value: f64,
    low: Option<f64>,
    high: Option<f64>,
    n: Option<f64>,
    change: Option<f64>,
    significant: Option<bool>,
}

fn latest(rows: &[Row]) -> Option<Latest> {
    // The latest complete month; the month to date only when no month is complete.
    let shown: Vec<&Row> = rows.iter().filter(|r| r.num("value").is_some()).collect();
    let pick = shown
        .iter()
        .rev()
        .find(|r| r.flag("complete") == Some(true))
        .or(shown.last())?;
    let label = month_label(pick.str("period_start"));
    Some(Latest {
        month: if pick.flag("complete") == Some(false) {
            format!("{label} to date")
        } else {
            label
        },
        value: pick.num("value")?,
        low: pick.num("ci_low"),
        high: pick.num("ci_high"),
        n: pick.num("n"),
        change: pick.num("change"),
        significant: pick.flag("change_significant"),
    })
}

fn change_words(l: &Latest, unit: &str) -> String {
    match (l.change, l.significant) {
        (Some(c), Some(sig)) => format!(
            "{} {} {unit} on the month before ({})",
            if c >= 0.0 { "up" } else { "down" },
            num(c.abs(), 0),
            if sig { "likely real" } else { "could be noise" }
        ),
        _ => "no earlier month to compare with".into(),
    }
}

fn trend_points(
    rows: &[Row],
    f: &dyn Fn(f64) -> String,
    what: &str,
    min_group_size: usize,
) -> Vec<TrendPoint> {
    charts::monthly_points(
        rows,
        &|r| r.str("period_start"),
        &|r| {
            let label = month_label(r.str("period_start"));
            let title = match r.num("value") {
                Some(v) => format!(
                    "{label}: {what} {}, {}, {} answers{}",
                    f(v),
                    interval(r.num("ci_low"), r.num("ci_high"), f),
                    count(r.num("n").unwrap_or(0.0)),
                    if r.flag("complete") == Some(false) {
                        " (month to date)"
                    } else {
                        ""
                    }
                ),
                None => format!("{label}: not shown (fewer than {min_group_size} answers)"),
            };
            TrendPoint {
                label,
                value: r.num("value"),
                low: r.num("ci_low"),
                high: r.num("ci_high"),
                title,
            }
        },
        TREND_MONTHS,
    )
}

/// Builds section 2.
pub async fn build(m: &Marts<'_>) -> Result<Feel> {
    let sources = vec![
        m.source("voice_scores").await?,
        m.source("voice_themes").await?,
        m.source("voice_closed_loop").await?,
        m.source("empathy_index").await?,
    ];
    let mut h = head(2, "feel", "How customers feel", sources);
    let mut out = Feel {
        head: h.clone(),
        figures: Vec::new(),
        nps_chart: None,
        csat_chart: None,
        sentiment_chart: None,
        frustrations: Vec::new(),
        praise: Vec::new(),
        quotes_note: "No customer quotes are shown: attune scores the words in memory and keeps \
                      no message text in any mart, so there is no quote that could be checked \
                      for consent and redaction. The phrases above are counts of words many \
                      customers used."
            .into(),
        empathy: Vec::new(),
    };
    let cols = "period_start, complete, n, value, ci_low, ci_high, change, change_significant";
    let series = |metric: &str| {
        format!(
            "AND metric = '{metric}' AND period_type = 'month' AND dimension = 'all' ORDER BY period_start"
        )
    };
    let mut light = Light::grey();
    match m.load("voice_scores", cols, &series("nps")).await? {
        None => h.job_missing("voice", "voice_scores"),
        Some(nps) => {
            let f = |v: f64| num(v, 0);
            if let Some(l) = latest(&nps) {
                // The score is promoters minus detractors in points, which
                // says nothing of a majority: 45% promoters, 40% passives and
                // 15% detractors make 30.
                let mood = if l.value >= 30.0 {
                    "many more customers would recommend you than warn others"
                } else if l.value > 0.0 {
                    "more customers would recommend you than warn others, but many are lukewarm"
                } else if l.value == 0.0 {
                    "as many customers would warn others as would recommend you"
                } else {
                    "more customers would warn others than would recommend you"
                };
                h.sentence = format!(
                    "In {}, {mood} (Net Promoter Score {}, {}).",
                    l.month,
                    num(l.value, 0),
                    change_words(&l, "points")
                );
                let dropped = l.significant == Some(true) && l.change.is_some_and(|c| c < 0.0);
                light = if l.value < 0.0 || (dropped && l.change.is_some_and(|c| c <= -10.0)) {
                    Light::red()
                } else if l.value < 30.0 || dropped {
                    Light::amber()
                } else {
                    Light::green()
                };
                out.figures.push(Figure {
                    label: format!("Net Promoter Score, {}", l.month),
                    value: num(l.value, 0),
                    note: format!(
                        "{}; {} answers; {}",
                        interval(l.low, l.high, f),
                        count(l.n.unwrap_or(0.0)),
                        change_words(&l, "points")
                    ),
                });
            } else {
                h.sentence =
                    "Too few customers answered the recommendation question to show a score."
                        .into();
            }
            if !nps.is_empty() {
                out.nps_chart = Some(charts::trend(
                    "chart-nps",
                    "Net Promoter Score by month",
                    "Net Promoter Score per month with its 95% interval as a band; months with too few answers are left out.",
                    &trend_points(&nps, &f, "NPS", m.min_group_size),
                    "month",
                    "NPS (points, −100 to 100)",
                    None,
                    &f,
                ));
            }
        }
    }
    if let Some(csat) = m.load("voice_scores", cols, &series("csat")).await? {
        let f = |v: f64| format!("{}%", num(v, 0));
        if let Some(l) = latest(&csat) {
            out.figures.push(Figure {
                label: format!("Satisfied customers (CSAT), {}", l.month),
                value: f(l.value),
                note: format!(
                    "share of answers 4 or 5 out of 5; {}; {} answers; {}",
                    interval(l.low, l.high, f),
                    count(l.n.unwrap_or(0.0)),
                    change_words(&l, "percentage points")
                ),
            });
        }
        if !csat.is_empty() {
            out.csat_chart = Some(charts::trend(
                "chart-csat",
                "Customer satisfaction (CSAT) by month",
                "Share of satisfied answers (4 or 5 out of 5) per month with its 95% interval as a band.",
                &trend_points(&csat, &f, "CSAT", m.min_group_size),
                "month",
                "satisfied answers (%)",
                None,
                &f,
            ));
        }
    }
    if let Some(sent) = m
        .load(
            "voice_scores",
            "group_value, n, value, ci_low, ci_high",
            "AND metric = 'sentiment' AND period_type = 'all' AND dimension = 'touchpoint' ORDER BY group_value",
        )
        .await?
    {
        let f = |v: f64| signed(v, 2);
        let rows: Vec<RowMark> = sent
            .iter()
            .map(|r| {
                let label = words(r.str("group_value"));
                match r.num("value") {
                    Some(v) => RowMark {
                        title: format!(
                            "{label}: mean sentiment {}, {}, {} messages",
                            f(v),
                            interval(r.num("ci_low"), r.num("ci_high"), f),
                            count(r.num("n").unwrap_or(0.0))
                        ),
                        value_label: f(v),
                        label,
                        value: Some(v),
                        low: r.num("ci_low"),
                        high: r.num("ci_high"),
                        colour: if v < 0.0 { charts::VERMILLION } else { charts::BLUE }.into(),
                    },
                    None => RowMark {
                        title: format!("{} messages: not shown", fewer_than(m.min_group_size)),
                        value_label: String::new(),
                        label,
                        value: None,
                        low: None,
                        high: None,
                        colour: charts::GREY.into(),
                    },
                }
            })
            .collect();
        if !rows.is_empty() {
            out.sentiment_chart = Some(charts::hbars(
                "chart-sentiment",
                "Sentiment by touchpoint",
                "Mean sentiment of what customers wrote, per touchpoint, from −1 (very negative) to +1 (very positive), with 95% intervals.",
                &rows,
                "mean sentiment (−1 very negative to +1 very positive)",
                Some((-1.0, 1.0)),
                &f,
            ));
        }
    }
    let theme_rows = "rank, phrase, messages, share";
    let themes = |direction: &str| {
        format!("AND touchpoint = 'all' AND direction = '{direction}' ORDER BY rank LIMIT 5")
    };
    let to_theme = |r: &Row| Theme {
        rank: r.num("rank").unwrap_or(0.0) as u32,
        phrase: r.str("phrase").to_string(),
        messages: count(r.num("messages").unwrap_or(0.0)),
        share: format!("{}%", num(r.num("share").unwrap_or(0.0), 1)),
    };
    if let Some(rows) = m
        .load("voice_themes", theme_rows, &themes("negative"))
        .await?
    {
        out.frustrations = rows.iter().map(to_theme).collect();
    }
    if let Some(rows) = m
        .load("voice_themes", theme_rows, &themes("positive"))
        .await?
    {
        out.praise = rows.iter().map(to_theme).collect();
    }
    match m
        .load(
            "voice_closed_loop",
            "metric, n, value, ci_low, ci_high, suppressed",
            "AND population = 'negative_tickets' AND period_type = 'all' ORDER BY metric",
        )
        .await?
    {
        None => {
            h.job_missing("voice", "voice_closed_loop");
        }
        Some(rows) => {
            let get = |metric: &str| rows.iter().find(|r| r.str("metric") == metric);
            if let Some(r) = get("followed_up_share") {
                let f = |v: f64| format!("{}%", num(v, 0));
                match r.num("value") {
                    Some(v) => {
                        out.figures.push(Figure {
                            label: "Unhappy support tickets followed up in time".into(),
                            value: f(v),
                            note: format!(
                                "{}; {} tickets",
                                interval(r.num("ci_low"), r.num("ci_high"), f),
                                count(r.num("n").unwrap_or(0.0))
                            ),
                        });
                        // Following up fewer than half of unhappy customers is worth a look.
                        if v < 50.0 && light.level < super::data::Level::Amber {
                            light = Light::amber();
                        }
                    }
                    None => out.figures.push(Figure {
                        label: "Unhappy support tickets followed up in time".into(),
                        value: "not shown".into(),
                        note: format!("{} tickets", fewer_than(m.min_group_size)),
                    }),
                }
            }
            if let Some(v) = get("median_hours_to_follow_up").and_then(|r| r.num("value")) {
                out.figures.push(Figure {
                    label: "Typical time to follow up".into(),
                    value: format!("{} hours", num(v, 0)),
                    note: "median, over followed-up unhappy tickets".into(),
                });
            }
        }
    }
    match m
        .load(
            "empathy_index",
            "component, value, ci_lower, ci_upper, weight, customers, note",
            "AND period = 'last_12_months' AND dimension = 'overall' ORDER BY component",
        )
        .await?
    {
        None => h.job_missing("empathy", "empathy_index"),
        Some(rows) => {
            let f = |v: f64| num(v, 0);
            // The index first, then the components in the mart's documented order.
            let order = [
                "index",
                "responsiveness",
                "closing_the_loop",
                "resolution",
                "tone",
                "human_when_it_matters",
                "perceived_empathy",
            ];
            let mut sorted: Vec<&Row> = rows.iter().collect();
            sorted.sort_by_key(|r| {
                order
                    .iter()
                    .position(|c| *c == r.str("component"))
                    .unwrap_or(order.len())
            });
            for r in sorted {
                let c = r.str("component");
                let value = r.num("value");
                if c == "index" {
                    if let Some(v) = value {
                        out.figures.push(Figure {
                            label: "Empathy Index, last 12 months".into(),
                            value: format!("{} / 100", f(v)),
                            note: format!(
                                "{}; {} customers; how warmly, quickly and humanly you respond",
                                interval(r.num("ci_lower"), r.num("ci_upper"), f),
                                count(r.num("customers").unwrap_or(0.0))
                            ),
                        });
                    }
                    continue;
                }
                out.empathy.push(Component {
                    name: component_name(c),
                    // The mart says why a value is missing ("suppressed: fewer than 10 customers").
                    value: value
                        .map_or_else(|| r.text("note").unwrap_or("not shown").to_string(), f),
                    interval: match (r.num("ci_lower"), r.num("ci_upper")) {
                        (Some(l), Some(h)) => format!("{} to {}", f(l), f(h)),
                        _ => "–".into(),
                    },
                    weight: r
                        .num("weight")
                        .map_or("left out".into(), |w| format!("{}%", num(w * 100.0, 0))),
                });
            }
        }
    }
    if h.sentence.is_empty() {
        h.sentence = "There is no customer feedback to summarize for this date.".into();
    }
    h.light = light;
    out.head = h;
    Ok(out)
}
