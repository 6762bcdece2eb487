//! How numbers read in the report: every number is formatted here, once,
//! so the templates only place text.

/// A count with thousands separators: 12,345.
pub fn count(n: f64) -> String {
    let n = n.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("−{out}") } else { out }
}

/// A number with `decimals` places and a real minus sign.
pub fn num(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, x);
    // "-0.0" reads as a negative zero to nobody's benefit.
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        return s[1..].to_string();
    }
    s.replacen('-', "−", 1)
}

/// A signed number: +3.0, −1.5, 0.0.
pub fn signed(x: f64, decimals: usize) -> String {
    let s = num(x, decimals);
    if x > 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        format!("+{s}")
    } else {
        s
    }
}

/// A ratio 0–1 as a percentage: 0.123 → "12.3%".
pub fn pct(ratio: f64, decimals: usize) -> String {
    format!("{}%", num(ratio * 100.0, decimals))
}

/// An interval in the same unit: "(95% CI 1.2 to 3.4)".
pub fn interval(lo: Option<f64>, hi: Option<f64>, f: impl Fn(f64) -> String) -> String {
    match (lo, hi) {
        (Some(l), Some(h)) => format!("95% interval {} to {}", f(l), f(h)),
        _ => "no interval".to_string(),
    }
}

/// An amount of money: "1,234 EUR".
pub fn money(x: f64, currency: &str) -> String {
    let c = if currency.is_empty() { "" } else { " " };
    format!("{}{c}{currency}", count(x))
}

/// What a suppressed cell shows.
pub fn fewer_than(min_group_size: usize) -> String {
    format!("fewer than {min_group_size}")
}

/// What a cell shows when it is withheld although its own group is not
/// small: with the total shown beside it, it would give a small one away.
pub const NOT_SHOWN: &str = "not shown";

/// A count, or "fewer than N" when suppressed (NULL) in the mart.
pub fn count_or_fewer(n: Option<f64>, min_group_size: usize) -> String {
    match n {
        Some(n) => count(n),
        None => fewer_than(min_group_size),
    }
}

/// "Jan 2025" from "2025-01-01" or "2025-01".
pub fn month_label(s: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = s.split('-');
    let (Some(y), Some(m)) = (parts.next(), parts.next()) else {
        return s.to_string();
    };
    match m.parse::<usize>() {
        Ok(m) if (1..=12).contains(&m) => format!("{} {y}", MONTHS[m - 1]),
        _ => s.to_string(),
    }
}

/// Months since year 0 of "2025-01-01" or "2025-01" (January 2025 is
/// 2025 × 12), for stepping month by month.
pub fn month_index(s: &str) -> Option<i32> {
    let mut parts = s.split('-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: i32 = parts.next()?.parse().ok()?;
    (1..=12).contains(&m).then_some(y * 12 + m - 1)
}

/// "Jan 2025" of a [`month_index`].
pub fn month_of_index(i: i32) -> String {
    month_label(&format!("{}-{:02}", i.div_euclid(12), i.rem_euclid(12) + 1))
}

/// Words instead of snake_case: "first_response_hours" → "first response hours".
pub fn words(s: &str) -> String {
    s.replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(-1000.0), "−1,000");
        assert_eq!(num(-0.01, 1), "0.0");
        assert_eq!(num(-2.25, 1), "−2.2");
        assert_eq!(signed(3.0, 1), "+3.0");
        assert_eq!(signed(0.0, 1), "0.0");
        assert_eq!(signed(-1.5, 1), "−1.5");
        assert_eq!(pct(0.1234, 1), "12.3%");
        assert_eq!(money(1234.4, "EUR"), "1,234 EUR");
        assert_eq!(count_or_fewer(None, 10), "fewer than 10");
        assert_eq!(month_label("2025-03-01"), "Mar 2025");
        assert_eq!(month_label("2025-13"), "2025-13");
        assert_eq!(
            interval(Some(1.0), Some(2.0), |x| num(x, 1)),
            "95% interval 1.0 to 2.0"
        );
    }
}
