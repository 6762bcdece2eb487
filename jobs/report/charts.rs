//! The report's charts as data: every coordinate is computed here, so the
//! one chart template (`reports/partials/chart.tera`) only places shapes
//! and text.
//!
//! Colours are the Okabe-Ito palette (distinguishable with every common
//! colour-vision deficiency); every chart carries a title and a sentence
//! for screen readers, and its axes say what they measure and in which unit.

use serde::Serialize;

/// Okabe-Ito: blue, the chart's main colour.
pub const BLUE: &str = "#0072B2";
/// Okabe-Ito: vermillion, for what needs attention.
pub const VERMILLION: &str = "#D55E00";
/// Okabe-Ito: bluish green, for what is fine.
pub const GREEN: &str = "#009E73";
/// Okabe-Ito: orange, for what to watch.
pub const ORANGE: &str = "#E69F00";
/// Okabe-Ito: sky blue, for bands and intervals.
pub const SKY: &str = "#56B4E9";
/// Okabe-Ito: reddish purple.
pub const PURPLE: &str = "#CC79A7";
/// Grey for neutral marks (not a palette colour: never carries meaning alone).
pub const GREY: &str = "#6B6B6B";

/// Width of a full-width chart (horizontal bars, intervals).
const WIDTH: f64 = 640.0;
/// Width of a half-width chart (trends and histograms, shown in pairs on
/// wide screens): a smaller canvas keeps its text readable when scaled down.
const NARROW: f64 = 480.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_RIGHT: f64 = 24.0;
const MARGIN_TOP: f64 = 16.0;
const MARGIN_BOTTOM: f64 = 48.0;

/// One chart, ready to place.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub id: String,
    /// The SVG `<title>`.
    pub title: String,
    /// What the chart shows, in words (the SVG's aria-label).
    pub description: String,
    pub width: f64,
    pub height: f64,
    pub areas: Vec<Area>,
    pub lines: Vec<Line>,
    pub bars: Vec<Bar>,
    pub paths: Vec<Stroke>,
    pub dots: Vec<Dot>,
    pub texts: Vec<Text>,
    pub legend: Vec<LegendItem>,
}

/// A filled shape (an interval band, an acceptable range).
#[derive(Debug, Clone, Serialize)]
pub struct Area {
    pub d: String,
    pub colour: String,
    pub opacity: f64,
}

/// A straight line: axis, grid line, reference line or interval whisker.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    /// axis, grid, reference or whisker (styled in style.css).
    pub class: String,
    pub colour: String,
}

/// A bar, with its value in words for hover and screen readers.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub colour: String,
    pub title: String,
}

/// A stroked path (a trend line).
#[derive(Debug, Clone, Serialize)]
pub struct Stroke {
    pub d: String,
    pub colour: String,
}

/// A point estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Dot {
    pub cx: f64,
    pub cy: f64,
    pub r: f64,
    pub colour: String,
    pub title: String,
}

/// A piece of text: tick labels, axis titles, value labels.
#[derive(Debug, Clone, Serialize)]
pub struct Text {
    pub x: f64,
    pub y: f64,
    pub text: String,
    /// start, middle or end.
    pub anchor: String,
    /// tick, axis, value or note (styled in style.css).
    pub class: String,
    /// Rotation in degrees about (x, y): -90 for a vertical axis title.
    pub rotate: f64,
}

/// A legend entry: a colour swatch with its meaning in words.
#[derive(Debug, Clone, Serialize)]
pub struct LegendItem {
    pub colour: String,
    pub label: String,
    /// swatch (light filled square, for bands), bar (solid square), line, dot or note.
    pub kind: String,
}

/// One point of a trend: x label, estimate and interval (None = not shown).
#[derive(Debug, Clone)]
pub struct TrendPoint {
    /// The period in full ("Mar 2025"); the axis shortens it to "Mar" where the year is clear.
    pub label: String,
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Words for the point's tooltip ("NPS 32, 95% interval 20 to 44, 120 answers").
    pub title: String,
}

/// The points of monthly rows, the last `keep` months of them, with an
/// empty point for each month between two rows that has none, so the axis
/// runs evenly in time and the line breaks where a month has no data
/// instead of joining its neighbours. `period` is "YYYY-MM" or a date in
/// the month; a row whose period does not read as one is kept as it is.
pub fn monthly_points<R>(
    rows: &[R],
    period: &dyn Fn(&R) -> &str,
    point: &dyn Fn(&R) -> TrendPoint,
    keep: usize,
) -> Vec<TrendPoint> {
    let mut out: Vec<TrendPoint> = Vec::with_capacity(rows.len());
    let mut last: Option<i32> = None;
    for r in rows {
        let month = super::format::month_index(period(r));
        if let (Some(prev), Some(m)) = (last, month) {
            for gap in prev + 1..m {
                let label = super::format::month_of_index(gap);
                out.push(TrendPoint {
                    title: format!("{label}: no data"),
                    label,
                    value: None,
                    low: None,
                    high: None,
                });
            }
        }
        last = month.or(last);
        out.push(point(r));
    }
    let start = out.len().saturating_sub(keep);
    out.split_off(start)
}

/// One row of a horizontal bar or interval chart.
#[derive(Debug, Clone)]
pub struct RowMark {
    pub label: String,
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub colour: String,
    /// Tooltip / value label in words; for a suppressed row, why it is not drawn.
    pub title: String,
    /// Short value label printed beside the mark.
    pub value_label: String,
}

/// One histogram bin: [low, high) and its count (None: suppressed).
#[derive(Debug, Clone)]
pub struct Bin {
    pub low: f64,
    pub high: f64,
    pub count: Option<f64>,
}

/// Horizontal scale of an interval chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear,
    /// Logarithmic, so a ratio of 0.5 sits as far from 1 as 2 does.
    Log,
}

/// Rounds a coordinate to 0.1 (smaller files, stable snapshots).
fn r(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Chart {
    fn new(id: &str, title: &str, description: &str, width: f64, height: f64) -> Chart {
        Chart {
            id: id.to_string(),
            title: title.to_string(),
            description: description.to_string(),
            width,
            height,
            areas: Vec::new(),
            lines: Vec::new(),
            bars: Vec::new(),
            paths: Vec::new(),
            dots: Vec::new(),
            texts: Vec::new(),
            legend: Vec::new(),
        }
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str, colour: &str) {
        self.lines.push(Line {
            x1: r(x1),
            y1: r(y1),
            x2: r(x2),
            y2: r(y2),
            class: class.into(),
            colour: colour.into(),
        });
    }

    fn text(&mut self, x: f64, y: f64, text: impl Into<String>, anchor: &str, class: &str) {
        self.texts.push(Text {
            x: r(x),
            y: r(y),
            text: text.into(),
            anchor: anchor.into(),
            class: class.into(),
            rotate: 0.0,
        });
    }

    /// Axis titles: x centred below the plot, y rotated along the left edge.
    fn axis_titles(&mut self, x_label: &str, y_label: &str) {
        let plot_mid = MARGIN_LEFT + (self.width - MARGIN_LEFT - MARGIN_RIGHT) / 2.0;
        self.text(plot_mid, self.height - 8.0, x_label, "middle", "axis");
        if !y_label.is_empty() {
            let mid = MARGIN_TOP + (self.height - MARGIN_TOP - MARGIN_BOTTOM) / 2.0;
            self.texts.push(Text {
                x: 14.0,
                y: r(mid),
                text: y_label.into(),
                anchor: "middle".into(),
                class: "axis".into(),
                rotate: -90.0,
            });
        }
    }
}

/// About five round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k).
pub fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| (hi - lo) / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Widens [lo, hi] to round ticks, so the axis starts and ends on a label.
pub fn nice_range(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let ticks = nice_ticks(lo, hi);
    let step = if ticks.len() >= 2 {
        ticks[1] - ticks[0]
    } else {
        (hi - lo).abs().max(1.0)
    };
    ((lo / step).floor() * step, (hi / step).ceil() * step)
}

/// A trend over periods with its 95% interval as a band. Points without a
/// value (suppressed or no data) break the line rather than pretend.
#[allow(clippy::too_many_arguments)]
pub fn trend(
    id: &str,
    title: &str,
    description: &str,
    points: &[TrendPoint],
    x_label: &str,
    y_label: &str,
    fixed: Option<(f64, f64)>,
    fmt: &dyn Fn(f64) -> String,
) -> Chart {
    let height = 260.0;
    let mut c = Chart::new(id, title, description, NARROW, height);
    let vals: Vec<f64> = points
        .iter()
        .flat_map(|p| [p.value, p.low, p.high])
        .flatten()
        .collect();
    let (lo, hi) = match fixed {
        Some(range) => range,
        None => {
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() {
                nice_range(lo, hi)
            } else {
                (0.0, 1.0)
            }
        }
    };
    let (left, right) = (MARGIN_LEFT, NARROW - MARGIN_RIGHT);
    let (top, bottom) = (MARGIN_TOP, height - MARGIN_BOTTOM);
    let y = |v: f64| bottom - (v.clamp(lo, hi) - lo) / (hi - lo) * (bottom - top);
    let n = points.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            (left + right) / 2.0
        } else {
            left + 12.0 + i as f64 * (right - left - 24.0) / (n - 1) as f64
        }
    };
    for t in nice_ticks(lo, hi) {
        c.line(left, y(t), right, y(t), "grid", GREY);
        c.text(left - 6.0, y(t) + 4.0, fmt(t), "end", "tick");
    }
    c.line(left, bottom, right, bottom, "axis", GREY);
    // The band: one closed polygon per run of points with an interval.
    let mut run: Vec<(f64, f64, f64)> = Vec::new();
    let mut bands = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match (p.low, p.high) {
            (Some(l), Some(h)) => run.push((x(i), y(l), y(h))),
            _ => bands.push(std::mem::take(&mut run)),
        }
    }
    bands.push(run);
    for b in bands.into_iter().filter(|b| !b.is_empty()) {
        let mut d = String::new();
        for (k, (px, _, hy)) in b.iter().enumerate() {
            d.push_str(&format!(
                "{}{},{} ",
                if k == 0 { "M" } else { "L" },
                r(*px),
                r(*hy)
            ));
        }
        for (px, ly, _) in b.iter().rev() {
            d.push_str(&format!("L{},{} ", r(*px), r(*ly)));
        }
        if b.len() == 1 {
            // A lone interval has no width as a polygon: draw it as a whisker.
            let (px, ly, hy) = b[0];
            c.line(px, ly, px, hy, "whisker", SKY);
        } else {
            d.push('Z');
            c.areas.push(Area {
                d,
                colour: SKY.into(),
                opacity: 0.35,
            });
        }
    }
    let mut d = String::new();
    let mut pen_down = false;
    for (i, p) in points.iter().enumerate() {
        match p.value {
            Some(v) => {
                d.push_str(&format!(
                    "{}{},{} ",
                    if pen_down { "L" } else { "M" },
                    r(x(i)),
                    r(y(v))
                ));
                pen_down = true;
                c.dots.push(Dot {
                    cx: r(x(i)),
                    cy: r(y(v)),
                    r: 3.5,
                    colour: BLUE.into(),
                    title: p.title.clone(),
                });
            }
            None => pen_down = false,
        }
    }
    if !d.is_empty() {
        c.paths.push(Stroke {
            d: d.trim_end().to_string(),
            colour: BLUE.into(),
        });
    }
    // Label every period when they fit, else every other one.
    let every = if n > 8 { 2 } else { 1 };
    // The latest period is always labelled; the year shows on the first label and on January.
    let mut first = true;
    for (i, p) in points.iter().enumerate() {
        if (n - 1 - i).is_multiple_of(every) {
            let text = if first || p.label.starts_with("Jan ") {
                p.label.clone()
            } else {
                p.label.split(' ').next().unwrap_or_default().to_string()
            };
            first = false;
            c.text(x(i), bottom + 16.0, text, "middle", "tick");
        }
    }
    c.axis_titles(x_label, y_label);
    c.legend = vec![
        LegendItem {
            colour: BLUE.into(),
            label: "estimate".into(),
            kind: "line".into(),
        },
        LegendItem {
            colour: SKY.into(),
            label: "95% interval".into(),
            kind: "swatch".into(),
        },
    ];
    c
}

/// Horizontal bars from zero (values may be negative), with intervals as
/// whiskers and suppressed rows named but not drawn.
#[allow(clippy::too_many_arguments)]
pub fn hbars(
    id: &str,
    title: &str,
    description: &str,
    rows: &[RowMark],
    x_label: &str,
    fixed: Option<(f64, f64)>,
    fmt: &dyn Fn(f64) -> String,
) -> Chart {
    rows_chart(
        id,
        title,
        description,
        rows,
        x_label,
        fixed,
        Scale::Linear,
        None,
        true,
        fmt,
    )
}

/// Point estimates with 95% intervals, one row each, against a reference
/// value (a ratio of 1, an effect of 0) and optionally an acceptable band.
#[allow(clippy::too_many_arguments)]
pub fn intervals(
    id: &str,
    title: &str,
    description: &str,
    rows: &[RowMark],
    x_label: &str,
    scale: Scale,
    band: Option<(f64, f64)>,
    fmt: &dyn Fn(f64) -> String,
) -> Chart {
    rows_chart(
        id,
        title,
        description,
        rows,
        x_label,
        None,
        scale,
        band,
        false,
        fmt,
    )
}

#[allow(clippy::too_many_arguments)]
fn rows_chart(
    id: &str,
    title: &str,
    description: &str,
    rows: &[RowMark],
    x_label: &str,
    fixed: Option<(f64, f64)>,
    scale: Scale,
    band: Option<(f64, f64)>,
    bars: bool,
    fmt: &dyn Fn(f64) -> String,
) -> Chart {
    let row_h = 28.0;
    let label_w = 190.0;
    let height = MARGIN_TOP + rows.len().max(1) as f64 * row_h + MARGIN_BOTTOM;
    let mut c = Chart::new(id, title, description, WIDTH, height);
    let tf = |v: f64| match scale {
        Scale::Linear => v,
        Scale::Log => v.max(1e-3).ln(),
    };
    let mut vals: Vec<f64> = rows
        .iter()
        .flat_map(|m| [m.value, m.low, m.high])
        .flatten()
        .collect();
    let reference = match scale {
        Scale::Linear => 0.0,
        Scale::Log => 1.0,
    };
    vals.push(reference);
    if let Some((a, b)) = band {
        vals.extend([a, b]);
    }
    let (lo, hi) = match fixed {
        Some(range) => range,
        None => {
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            match scale {
                Scale::Linear => nice_range(lo, hi),
                Scale::Log => (lo.max(1e-3) / 1.1, hi * 1.1),
            }
        }
    };
    // Room on the right for the value label ("2.40× concern").
    let (left, right) = (
        label_w,
        WIDTH - MARGIN_RIGHT - if bars { 56.0 } else { 110.0 },
    );
    let bottom = height - MARGIN_BOTTOM;
    let x = |v: f64| left + (tf(v.clamp(lo, hi)) - tf(lo)) / (tf(hi) - tf(lo)) * (right - left);
    let ticks = match scale {
        Scale::Linear => nice_ticks(lo, hi),
        Scale::Log => [0.25, 0.5, 0.8, 1.0, 1.25, 2.0, 4.0, 8.0]
            .into_iter()
            .filter(|t| *t >= lo && *t <= hi)
            .collect(),
    };
    if let Some((a, b)) = band {
        let (xa, xb) = (r(x(a)), r(x(b)));
        c.areas.push(Area {
            d: format!("M{xa},{MARGIN_TOP} L{xb},{MARGIN_TOP} L{xb},{bottom} L{xa},{bottom} Z"),
            colour: GREEN.into(),
            opacity: 0.12,
        });
        c.legend.push(LegendItem {
            colour: GREEN.into(),
            label: format!("acceptable range {} to {}", fmt(a), fmt(b)),
            kind: "swatch".into(),
        });
    }
    for t in ticks {
        c.line(x(t), MARGIN_TOP, x(t), bottom, "grid", GREY);
        c.text(x(t), bottom + 16.0, fmt(t), "middle", "tick");
    }
    c.line(left, bottom, right, bottom, "axis", GREY);
    c.line(
        x(reference),
        MARGIN_TOP,
        x(reference),
        bottom,
        "reference",
        GREY,
    );
    for (i, m) in rows.iter().enumerate() {
        let cy = MARGIN_TOP + (i as f64 + 0.5) * row_h;
        c.text(left - 8.0, cy + 4.0, m.label.clone(), "end", "label");
        let Some(v) = m.value else {
            c.text(left + 6.0, cy + 4.0, m.title.clone(), "start", "note");
            continue;
        };
        if bars {
            let (x0, x1) = (x(reference.max(lo)), x(v));
            c.bars.push(Bar {
                x: r(x0.min(x1)),
                y: r(cy - 9.0),
                w: r((x1 - x0).abs().max(1.0)),
                h: 18.0,
                colour: m.colour.clone(),
                title: m.title.clone(),
            });
        }
        if let (Some(l), Some(h)) = (m.low, m.high) {
            c.line(x(l), cy, x(h), cy, "whisker", "#000000");
            c.line(x(l), cy - 5.0, x(l), cy + 5.0, "whisker", "#000000");
            c.line(x(h), cy - 5.0, x(h), cy + 5.0, "whisker", "#000000");
        }
        if !bars {
            c.dots.push(Dot {
                cx: r(x(v)),
                cy: r(cy),
                r: 5.0,
                colour: m.colour.clone(),
                title: m.title.clone(),
            });
        }
        // The value label sits beyond the bar and whisker, on the side the bar grows to.
        if bars && v < reference {
            let start = [Some(v), m.low]
                .into_iter()
                .flatten()
                .map(&x)
                .fold(x(v), f64::min);
            c.text(start - 6.0, cy + 4.0, m.value_label.clone(), "end", "value");
        } else {
            let end = [Some(v), m.high]
                .into_iter()
                .flatten()
                .map(&x)
                .fold(x(v), f64::max);
            c.text(end + 6.0, cy + 4.0, m.value_label.clone(), "start", "value");
        }
    }
    c.axis_titles(x_label, "");
    c
}

/// A histogram of counts per bin; suppressed bins are marked, not drawn.
#[allow(clippy::too_many_arguments)]
pub fn histogram(
    id: &str,
    title: &str,
    description: &str,
    bins: &[Bin],
    x_label: &str,
    y_label: &str,
    fmt_x: &dyn Fn(f64) -> String,
    suppressed_note: &str,
) -> Chart {
    let height = 260.0;
    let mut c = Chart::new(id, title, description, NARROW, height);
    let max = bins
        .iter()
        .filter_map(|b| b.count)
        .fold(0.0, f64::max)
        .max(1.0);
    let (_, hi) = nice_range(0.0, max);
    let (left, right) = (MARGIN_LEFT, NARROW - MARGIN_RIGHT);
    let (top, bottom) = (MARGIN_TOP, height - MARGIN_BOTTOM);
    let y = |v: f64| bottom - v / hi * (bottom - top);
    for t in nice_ticks(0.0, hi) {
        c.line(left, y(t), right, y(t), "grid", GREY);
        c.text(
            left - 6.0,
            y(t) + 4.0,
            super::format::count(t),
            "end",
            "tick",
        );
    }
    let n = bins.len().max(1);
    let w = (right - left) / n as f64;
    for (i, b) in bins.iter().enumerate() {
        let bx = left + i as f64 * w;
        match b.count {
            Some(k) => c.bars.push(Bar {
                x: r(bx + 1.0),
                y: r(y(k)),
                w: r(w - 2.0),
                h: r(bottom - y(k)),
                colour: BLUE.into(),
                title: format!(
                    "{} to {}: {} customers",
                    fmt_x(b.low),
                    fmt_x(b.high),
                    super::format::count(k)
                ),
            }),
            None => c.text(bx + w / 2.0, bottom - 6.0, "*", "middle", "note"),
        }
    }
    let every = if n > 8 { 2 } else { 1 };
    for (i, b) in bins.iter().enumerate() {
        if i % every == 0 {
            c.text(
                left + i as f64 * w,
                bottom + 16.0,
                fmt_x(b.low),
                "middle",
                "tick",
            );
        }
    }
    if let Some(last) = bins.last()
        && n.is_multiple_of(every)
    {
        c.text(right, bottom + 16.0, fmt_x(last.high), "middle", "tick");
    }
    c.line(left, bottom, right, bottom, "axis", GREY);
    c.axis_titles(x_label, y_label);
    if bins.iter().any(|b| b.count.is_none()) {
        c.legend.push(LegendItem {
            colour: GREY.into(),
            label: format!("* {suppressed_note}"),
            kind: "note".into(),
        });
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 100.0),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(-1.0, 1.0), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(nice_range(3.0, 47.0), (0.0, 50.0));
        assert_eq!(nice_ticks(5.0, 5.0), vec![5.0]);
    }

    #[test]
    fn a_month_without_a_row_is_an_empty_point_not_a_join() {
        let rows = [
            ("2024-11-01", 1.0),
            ("2024-12-01", 2.0),
            ("2025-03-01", 3.0),
            ("not a month", 4.0),
            ("2025-04", 5.0),
        ];
        let point = |r: &(&str, f64)| TrendPoint {
            label: r.0.into(),
            value: Some(r.1),
            low: None,
            high: None,
            title: String::new(),
        };
        let got = monthly_points(&rows, &|r| r.0, &point, 12);
        let labels: Vec<(&str, Option<f64>)> =
            got.iter().map(|p| (p.label.as_str(), p.value)).collect();
        assert_eq!(
            labels,
            vec![
                ("2024-11-01", Some(1.0)),
                ("2024-12-01", Some(2.0)),
                ("Jan 2025", None),
                ("Feb 2025", None),
                ("2025-03-01", Some(3.0)),
                ("not a month", Some(4.0)),
                ("2025-04", Some(5.0)),
            ]
        );
        assert_eq!(got[2].title, "Jan 2025: no data");
        let last3 = monthly_points(&rows, &|r| r.0, &point, 3);
        assert_eq!(last3.len(), 3);
        assert_eq!(last3[0].label, "2025-03-01", "the gaps count as months");
    }

    #[test]
    fn a_gap_in_a_trend_breaks_the_line_and_the_band() {
        let p = |v: Option<f64>| TrendPoint {
            label: "m".into(),
            value: v,
            low: v.map(|v| v - 5.0),
            high: v.map(|v| v + 5.0),
            title: String::new(),
        };
        let c = trend(
            "t",
            "T",
            "d",
            &[
                p(Some(10.0)),
                p(Some(20.0)),
                p(None),
                p(Some(30.0)),
                p(Some(25.0)),
            ],
            "month",
            "points",
            Some((0.0, 40.0)),
            &|v| format!("{v}"),
        );
        assert_eq!(c.paths.len(), 1);
        assert_eq!(c.paths[0].d.matches('M').count(), 2, "{}", c.paths[0].d);
        assert_eq!(c.areas.len(), 2, "one band per run of points");
        assert_eq!(c.dots.len(), 4);
        // Value 10 on a 0-40 axis sits a quarter of the way up the plot.
        let plot = 260.0 - MARGIN_BOTTOM - MARGIN_TOP;
        assert!((c.dots[0].cy - (260.0 - MARGIN_BOTTOM - plot / 4.0)).abs() < 0.11);
    }

    #[test]
    fn a_long_trend_labels_every_other_month_ending_with_the_latest() {
        const M: [&str; 14] = [
            "Nov", "Dec", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
            "Nov", "Dec",
        ];
        let points: Vec<TrendPoint> = (0..14)
            .map(|i| TrendPoint {
                label: format!("{} {}", M[i], if i < 2 { 2024 } else { 2025 }),
                value: Some(i as f64),
                low: None,
                high: None,
                title: String::new(),
            })
            .collect();
        let c = trend("t", "T", "d", &points, "month", "", None, &|v| {
            format!("{v}")
        });
        let ticks: Vec<&str> = c
            .texts
            .iter()
            .filter(|t| t.class == "tick" && t.text.chars().next().is_some_and(char::is_alphabetic))
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(
            ticks,
            vec!["Dec 2024", "Feb", "Apr", "Jun", "Aug", "Oct", "Dec"],
            "the year on the first label; January is skipped here"
        );
    }

    #[test]
    fn log_intervals_put_reciprocal_ratios_at_equal_distances() {
        let row = |v: f64| RowMark {
            label: "g".into(),
            value: Some(v),
            low: None,
            high: None,
            colour: BLUE.into(),
            title: String::new(),
            value_label: String::new(),
        };
        let c = intervals(
            "f",
            "F",
            "d",
            &[row(0.5), row(2.0)],
            "ratio",
            Scale::Log,
            Some((0.8, 1.25)),
            &|v| format!("{v}"),
        );
        let one = c
            .lines
            .iter()
            .find(|l| l.class == "reference")
            .expect("reference line")
            .x1;
        let (a, b) = (c.dots[0].cx, c.dots[1].cx);
        assert!(((one - a) - (b - one)).abs() < 0.3, "{a} {one} {b}");
        assert_eq!(c.areas.len(), 1, "the acceptable band");
    }
}
