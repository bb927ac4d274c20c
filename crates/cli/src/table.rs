//! Plain-text tables for the summaries every command prints.

/// Renders rows as an aligned table with a header rule. Numeric-looking cells align right.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let numeric = |s: &str| {
        !s.is_empty()
            && s.trim_end_matches('%')
                .replace(['.', ',', '-', '+', 'x'], "")
                .chars()
                .all(|c| c.is_ascii_digit())
    };
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut parts = Vec::new();
        for (i, c) in cells.iter().enumerate().take(cols) {
            let pad = width[i].saturating_sub(c.chars().count());
            if numeric(c) {
                parts.push(format!("{}{c}", " ".repeat(pad)));
            } else {
                parts.push(format!("{c}{}", " ".repeat(pad)));
            }
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.iter().map(|s| s.to_string()).collect(), &mut out);
    out.push_str(
        &width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.push('\n');
    for r in rows {
        line(r.clone(), &mut out);
    }
    out
}

/// A share as a percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}
