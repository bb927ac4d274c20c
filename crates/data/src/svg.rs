//! Minimal, dependency-free SVG bar charts for the data reports (readable in any browser).

/// Escapes text for SVG/XML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A vertical bar chart of `(label, value)` as an SVG `<g>` at `(x, y)` of size `w` × `h`.
pub fn bar_chart(
    title: &str,
    bars: &[(String, f64)],
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    color: &str,
) -> String {
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1.0);
    let plot_top = y + 30.0;
    let plot_h = h - 80.0;
    let slot = w / bars.len().max(1) as f64;
    let mut s = format!(
        "<g><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        x,
        y + 16.0,
        escape(title)
    );
    s.push_str(&format!(
        "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>",
        plot_top + plot_h,
        x + w,
        plot_top + plot_h
    ));
    for (i, (label, v)) in bars.iter().enumerate() {
        let bh = plot_h * v / max;
        let bx = x + i as f64 * slot + slot * 0.15;
        let by = plot_top + plot_h - bh;
        s.push_str(&format!(
            "<rect x=\"{bx:.1}\" y=\"{by:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>",
            slot * 0.7,
            escape(label),
            v
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            bx + slot * 0.35,
            by - 4.0,
            v
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" transform=\"rotate(-35 {:.1} {:.1})\">{}</text>",
            bx + slot * 0.35,
            plot_top + plot_h + 14.0,
            bx + slot * 0.35,
            plot_top + plot_h + 14.0,
            escape(label)
        ));
    }
    s.push_str("</g>");
    s
}

/// Wraps chart groups into a complete SVG document.
pub fn document(width: f64, height: f64, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>{body}</svg>\n"
    )
}
