//! What the report opens with: this month's index, its trend against the
//! previous month with an interval, and the weakest component with one plain
//! suggestion backed by a number from the same month.
//!
//! The change between two months is the difference of their overall
//! indices; its standard error is √(se₁² + se₂²), treating the two months'
//! contacts as independent samples (they are different contacts, though
//! partly of the same customers).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::components::{Component, Contact, Month, Source};
use super::index::{Cell, Dimension, Period, Z95};
use super::tone::ToneLabel;
use crate::config::EmpathyConfig;

/// The headline numbers and sentences.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    /// The month the headline is about (`YYYY-MM`): the run date's month, or
    /// the latest month before it with a shown index.
    pub month: Option<String>,
    /// Whether `month` is the run date's month and the run date is not its last day.
    pub month_to_date: bool,
    pub value: Option<f64>,
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    pub previous_month: Option<String>,
    pub previous_value: Option<f64>,
    pub change: Option<f64>,
    pub change_ci_lower: Option<f64>,
    pub change_ci_upper: Option<f64>,
    /// "up 3.2 points from 2025-07 (95% CI +0.4 to +6.0)" or "about the same as …".
    pub trend: String,
    pub weakest_component: Option<String>,
    pub weakest_value: Option<f64>,
    /// One sentence: what is weak, by how much, and the quickest win.
    pub suggestion: Option<String>,
    /// The whole headline in one line.
    pub sentence: String,
}

fn overall(cells: &[Cell], m: Month) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.period == Period::Month(m) && c.dimension == Dimension::Overall)
}

/// SERVQUAL empathy items, in item order.
pub const ITEMS: [&str; 5] = [
    "individual attention",
    "personal attention",
    "having their best interests at heart",
    "understanding their specific needs",
    "convenient opening hours",
];

fn pct(x: f64) -> String {
    format!("{:.0}%", x)
}

/// The suggestion for a weak component, from the month's contacts.
fn suggestion(c: Component, month: &[&Contact], cfg: &EmpathyConfig, k: usize) -> Option<String> {
    // A channel's share is said only for a channel with at least k
    // customers this month, as the index's own cells: the worst share is
    // otherwise that of the tiniest channel (one late phone call: "0%").
    let big_enough = |contacts: &[&Contact]| {
        super::index::distinct_customers(contacts.iter().copied()) >= k as u64
    };
    let value_share = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    match c {
        Component::ClosingTheLoop => {
            let negative: Vec<&&Contact> = month
                .iter()
                .filter(|x| x.scores[c.idx()].is_some())
                .collect();
            if negative.is_empty() {
                return None;
            }
            let waits: Vec<f64> = negative
                .iter()
                .filter_map(|x| x.detail.follow_up_hours)
                .collect();
            let never = negative.len() - waits.len();
            let in_time: Vec<f64> = negative.iter().filter_map(|x| x.scores[c.idx()]).collect();
            let hours = cfg.follow_up_hours;
            let waited = if waits.is_empty() {
                "none of them heard back".to_string()
            } else {
                format!(
                    "those who heard back waited {:.1} days on average, and {never} of {} heard nothing",
                    value_share(&waits) / 24.0,
                    negative.len()
                )
            };
            Some(format!(
                "Only {} of unhappy customers (low ratings, 1-2 star reviews) heard back within {hours:.0} hours; {waited}. Calling back within {hours:.0} hours is the quickest win.",
                pct(value_share(&in_time)),
            ))
        }
        Component::Responsiveness => {
            let mut by_channel: BTreeMap<&str, (usize, usize, f64, Vec<&Contact>)> =
                BTreeMap::new();
            for x in month.iter().filter(|x| x.source == Source::Ticket) {
                if let (Some(ch), Some((in_time, target))) =
                    (x.touchpoint.as_deref(), x.detail.first_response)
                {
                    let e = by_channel.entry(ch).or_insert((0, 0, target, Vec::new()));
                    e.0 += 1;
                    e.1 += usize::from(in_time);
                    e.3.push(x);
                }
            }
            let (ch, (n, met, target, _)) = by_channel
                .into_iter()
                .filter(|(_, (n, _, _, who))| *n > 0 && big_enough(who))
                .min_by(|a, b| {
                    let ra = a.1.1 as f64 / a.1.0 as f64;
                    let rb = b.1.1 as f64 / b.1.0 as f64;
                    ra.total_cmp(&rb).then(a.0.cmp(b.0))
                })?;
            Some(format!(
                "Only {} of {ch} tickets got a first answer within your {} target; answering {ch} faster is the quickest win.",
                pct(100.0 * met as f64 / n as f64),
                hours_words(target)
            ))
        }
        Component::Resolution => {
            let known: Vec<bool> = month
                .iter()
                .filter_map(|x| x.detail.unresolved_or_repeat)
                .collect();
            if known.is_empty() {
                return None;
            }
            let bad = known.iter().filter(|b| **b).count();
            Some(format!(
                "{} of tickets were reopened, left unresolved or followed by another contact on the same topic within {} days; fixing the cause the first time is the quickest win.",
                pct(100.0 * bad as f64 / known.len() as f64),
                cfg.repeat_contact_days
            ))
        }
        Component::Tone => {
            let mut by_channel: BTreeMap<&str, (usize, usize, Vec<&Contact>)> = BTreeMap::new();
            for x in month {
                if let (Some(ch), Some(label)) = (x.touchpoint.as_deref(), x.detail.tone_label) {
                    let e = by_channel.entry(ch).or_default();
                    e.0 += 1;
                    e.1 += usize::from(label == ToneLabel::Cold);
                    e.2.push(x);
                }
            }
            let (ch, (n, cold, _)) = by_channel
                .into_iter()
                .filter(|(_, (n, _, who))| *n > 0 && big_enough(who))
                .max_by(|a, b| {
                    let ra = a.1.1 as f64 / a.1.0 as f64;
                    let rb = b.1.1 as f64 / b.1.0 as f64;
                    ra.total_cmp(&rb).then(b.0.cmp(a.0))
                })?;
            Some(format!(
                "{} of first replies on {ch} read as cold (policy or blame, no acknowledgment); opening with an acknowledgment and a concrete next step is the quickest win.",
                pct(100.0 * cold as f64 / n as f64)
            ))
        }
        Component::HumanWhenItMatters => {
            let charged: Vec<f64> = month.iter().filter_map(|x| x.scores[c.idx()]).collect();
            if charged.is_empty() {
                return None;
            }
            let bot_only = charged.iter().filter(|v| **v == 0.0).count();
            Some(format!(
                "{} of upset customers ({bot_only} of {}) never reached a person; routing frustrated, angry or anxious contacts to a human is the quickest win.",
                pct(100.0 * bot_only as f64 / charged.len() as f64),
                charged.len()
            ))
        }
        Component::PerceivedEmpathy => {
            let mut sums = [(0.0, 0usize); 5];
            for x in month {
                for (k, it) in x.detail.items.iter().enumerate() {
                    if let Some(v) = it {
                        sums[k].0 += f64::from(*v);
                        sums[k].1 += 1;
                    }
                }
            }
            let (k, mean) = sums
                .iter()
                .enumerate()
                .filter(|(_, (_, n))| *n > 0)
                .map(|(k, (s, n))| (k, s / *n as f64))
                .min_by(|a, b| a.1.total_cmp(&b.1))?;
            Some(format!(
                "Customers rate {} lowest ({mean:.1} of 7 in the empathy survey); that is where they feel least cared for, and the quickest win.",
                ITEMS[k]
            ))
        }
    }
}

fn hours_words(h: f64) -> String {
    if h < 1.0 {
        format!("{:.0}-minute", h * 60.0)
    } else {
        format!("{h:.0}-hour")
    }
}

fn signed(x: f64) -> String {
    format!("{x:+.1}")
}

/// The headline of the run date's month.
pub fn headline(
    cells: &[Cell],
    contacts: &[Contact],
    run_date: NaiveDate,
    cfg: &EmpathyConfig,
    min_group_size: usize,
) -> Headline {
    let run_month = Month::of_date(run_date);
    let shown = |m: Month| overall(cells, m).filter(|c| c.index().value.is_some());
    let first = cells
        .iter()
        .filter_map(|c| match c.period {
            Period::Month(m) => Some(m),
            Period::Last12Months => None,
        })
        .min()
        .unwrap_or(run_month);
    let mut m = run_month;
    while shown(m).is_none() && m > first {
        m = m.prev();
    }
    let Some(cell) = shown(m) else {
        return Headline {
            month: None,
            month_to_date: false,
            value: None,
            ci_lower: None,
            ci_upper: None,
            previous_month: None,
            previous_value: None,
            change: None,
            change_ci_lower: None,
            change_ci_upper: None,
            trend: "no month has enough contacts for an index yet".into(),
            weakest_component: None,
            weakest_value: None,
            suggestion: None,
            sentence: "The Empathy Index needs more contacts: no month has enough customers to show it yet.".into(),
        };
    };
    let idx = cell.index();
    let value = idx.value;
    let prev = m.prev();
    let prev_cell = shown(prev);
    let prev_idx = prev_cell.map(Cell::index);
    // Each month's index is re-weighted over the components it could show:
    // a month that lost its weakest component to suppression would read as
    // a rise nothing caused, so two indices of different components are
    // not compared.
    let made_of = |c: &Cell| Component::ALL.map(|k| c.component(k).weight.is_some());
    let comparable = prev_cell.is_none_or(|p| made_of(p) == made_of(cell));
    let (change, change_ci) = match (idx.value, idx.se, prev_idx.and_then(|p| p.value.zip(p.se))) {
        _ if !comparable => (None, None),
        (Some(v), Some(se), Some((pv, pse))) => {
            let d = v - pv;
            let s = (se * se + pse * pse).sqrt();
            (Some(d), Some((d - Z95 * s, d + Z95 * s)))
        }
        _ => (None, None),
    };
    let trend = match (change, change_ci) {
        (Some(d), Some((lo, hi))) if lo > 0.0 => format!(
            "up {d:.1} points from {prev} (95% CI {} to {})",
            signed(lo),
            signed(hi)
        ),
        (Some(d), Some((lo, hi))) if hi < 0.0 => format!(
            "down {:.1} points from {prev} (95% CI {} to {})",
            -d,
            signed(lo),
            signed(hi)
        ),
        (Some(d), Some((lo, hi))) => format!(
            "about the same as {prev} (change {}, 95% CI {} to {}: not a clear change)",
            signed(d),
            signed(lo),
            signed(hi)
        ),
        _ if !comparable => format!(
            "not compared with {prev}: one of the two months had too few customers for a component, so their indices are made of different parts"
        ),
        _ => format!("no index for {prev} to compare with"),
    };
    let weakest = Component::ALL
        .iter()
        .filter_map(|c| cell.component(*c).value.map(|v| (*c, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let month_contacts: Vec<&Contact> = cell
        .contacts
        .iter()
        .map(|&j| &contacts[j as usize])
        .collect();
    let suggestion = weakest.and_then(|(c, _)| suggestion(c, &month_contacts, cfg, min_group_size));
    let month_to_date = m == run_month && run_date < m.last_day();
    let ci = idx.ci;
    let sentence = format!(
        "Empathy Index {m}{}: {:.0} of 100{}, {trend}.{}",
        if month_to_date {
            " (month to date)"
        } else {
            ""
        },
        value.unwrap_or(f64::NAN),
        ci.map(|(lo, hi)| format!(" (95% CI {lo:.0}-{hi:.0})"))
            .unwrap_or_default(),
        match (weakest, &suggestion) {
            (Some((c, v)), Some(s)) => format!(" Weakest: {} at {v:.0}. {s}", c.name()),
            (Some((c, v)), None) => format!(" Weakest: {} at {v:.0}.", c.name()),
            _ => String::new(),
        }
    );
    Headline {
        month: Some(m.to_string()),
        month_to_date,
        value,
        ci_lower: ci.map(|c| c.0),
        ci_upper: ci.map(|c| c.1),
        previous_month: prev_cell.map(|_| prev.to_string()),
        previous_value: prev_idx.and_then(|p| p.value),
        change,
        change_ci_lower: change_ci.map(|c| c.0),
        change_ci_upper: change_ci.map(|c| c.1),
        trend,
        weakest_component: weakest.map(|(c, _)| c.name().to_string()),
        weakest_value: weakest.map(|(_, v)| v),
        suggestion,
        sentence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ValidConfig;
    use crate::empathy::components::Detail;
    use crate::empathy::index::{Groups, Settings, aggregate};

    fn ticket(customer: u32, month: Month, resp: f64, follow_up: Option<Option<f64>>) -> Contact {
        let mut scores = [None; 6];
        scores[Component::Responsiveness.idx()] = Some(resp);
        let mut detail = Detail {
            first_response: Some((resp == 100.0, 1.0)),
            ..Detail::default()
        };
        // Some(x): a negative contact whose window has closed; x the follow-up delay.
        if let Some(hours) = follow_up {
            scores[Component::ClosingTheLoop.idx()] = Some(if hours.is_some_and(|h| h <= 48.0) {
                100.0
            } else {
                0.0
            });
            detail.follow_up_hours = hours;
        }
        Contact {
            source: Source::Ticket,
            contact_id: format!("T{customer}-{}", month.0),
            customer: Some(customer),
            at: 0.0,
            month,
            touchpoint: Some("chat".into()),
            handled_by: Some("human".into()),
            scores,
            charged: None,
            detail,
        }
    }

    /// July: 20 customers answered in time. August: the same, plus 10 unhappy
    /// customers: 3 followed up after 24 h, 2 after 72 h, 5 never. Closing
    /// the loop (30) is the weakest component; those who heard back waited
    /// (3 × 24 + 2 × 72) / 5 / 24 = 1.8 days.
    #[test]
    fn weakest_component_and_its_suggestion() {
        let cfg = ValidConfig::default().empathy;
        let jul = Month(2025 * 12 + 6);
        let aug = jul.next();
        let mut contacts = Vec::new();
        for c in 0..20 {
            contacts.push(ticket(c, jul, 100.0, None));
            contacts.push(ticket(c, aug, 100.0, None));
        }
        // July's unhappy customers all heard back within a day
        for k in 0..10 {
            contacts.push(ticket(200 + k, jul, 100.0, Some(Some(24.0))));
        }
        let delays = [Some(24.0), Some(24.0), Some(24.0), Some(72.0), Some(72.0)];
        for (k, d) in delays.into_iter().chain([None; 5]).enumerate() {
            contacts.push(ticket(100 + k as u32, aug, 100.0, Some(d)));
        }
        let unavailable: [Option<String>; 6] = Default::default();
        let date = NaiveDate::from_ymd_opt(2025, 8, 20).expect("date");
        let settings = Settings {
            cfg: &cfg,
            min_group_size: 10,
            unavailable: &unavailable,
            run_month: aug,
        };
        let cells = aggregate(&contacts, &Groups::default(), &settings);
        let h = headline(&cells, &contacts, date, &cfg, 10);
        assert_eq!(h.month.as_deref(), Some("2025-08"));
        assert!(h.month_to_date);
        assert_eq!(h.previous_month.as_deref(), Some("2025-07"));
        assert_eq!(h.weakest_component.as_deref(), Some("closing_the_loop"));
        assert_eq!(h.weakest_value, Some(30.0));
        let s = h.suggestion.expect("suggestion");
        assert!(s.starts_with("Only 30% of unhappy customers"), "{s}");
        assert!(
            s.contains("waited 1.8 days on average, and 5 of 10 heard nothing"),
            "{s}"
        );
        // July 100 (both components 100); August: responsiveness 100 (w 0.2/0.35),
        // closing the loop 30 (w 0.15/0.35) -> 70. July has no variation, so the
        // change's interval comes from August alone.
        let v = h.value.expect("value");
        assert!((v - 70.0).abs() < 1e-9, "{v}");
        assert!((h.change.expect("change") + 30.0).abs() < 1e-9);
        assert!(
            h.trend.starts_with("down 30.0 points from 2025-07"),
            "{}",
            h.trend
        );
        assert!(
            h.sentence
                .starts_with("Empathy Index 2025-08 (month to date): 70 of 100")
        );
        // On the month's last day it is no longer "month to date".
        let last = headline(&cells, &contacts, aug.last_day(), &cfg, 10);
        assert!(!last.month_to_date);

        // Without July's unhappy customers July's index is responsiveness
        // alone: a fall to 70 would be the new component, not worse service.
        let fewer: Vec<Contact> = contacts
            .iter()
            .filter(|c| !(c.month == jul && c.customer >= Some(200)))
            .cloned()
            .collect();
        let cells = aggregate(&fewer, &Groups::default(), &settings);
        let h = headline(&cells, &fewer, date, &cfg, 10);
        assert_eq!((h.change, h.previous_value), (None, Some(100.0)));
        assert!(
            h.trend.starts_with("not compared with 2025-07"),
            "{}",
            h.trend
        );
    }

    /// Chat: 12 customers, 6 answered in time (50%). Phone: one customer,
    /// answered late (0%), below k = 10: the suggestion names chat, never
    /// the share of a channel too small to publish.
    #[test]
    fn a_channel_below_the_group_size_is_never_named() {
        let cfg = ValidConfig::default().empathy;
        let aug = Month(2025 * 12 + 7);
        let mut contacts: Vec<Contact> = (0..12)
            .map(|i| ticket(i, aug, if i < 6 { 100.0 } else { 0.0 }, None))
            .collect();
        let mut phone = ticket(99, aug, 0.0, None);
        phone.touchpoint = Some("phone".into());
        contacts.push(phone);
        let month: Vec<&Contact> = contacts.iter().collect();
        let s =
            suggestion(Component::Responsiveness, &month, &cfg, 10).expect("chat is big enough");
        assert!(s.starts_with("Only 50% of chat tickets"), "{s}");
        let only_phone: Vec<&Contact> = month
            .iter()
            .copied()
            .filter(|c| c.customer == Some(99))
            .collect();
        assert_eq!(
            suggestion(Component::Responsiveness, &only_phone, &cfg, 10),
            None
        );
    }

    #[test]
    fn no_index_yet() {
        let cfg = ValidConfig::default().empathy;
        let date = NaiveDate::from_ymd_opt(2025, 8, 20).expect("date");
        let h = headline(&[], &[], date, &cfg, 10);
        assert!(h.value.is_none() && h.month.is_none());
        assert!(h.sentence.contains("needs more contacts"));
    }
}
