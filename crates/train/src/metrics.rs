//! Per-step metrics (`metrics.jsonl`) and the loss chart (`loss.svg`).

use serde::{Deserialize, Serialize};
use tierforge_data::svg::{document, escape};

/// One optimizer step, as written to `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based optimizer step.
    pub step: usize,
    /// Fractional epoch at the end of the step.
    pub epoch: f64,
    /// Mean cross-entropy per supervised token over the step's micro-batches.
    pub loss: f64,
    /// Share of supervised tokens whose most likely prediction was right, 0..=1.
    pub mean_token_accuracy: f64,
    /// Learning rate used for the step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens (padding excluded) processed per second in this step.
    pub tokens_per_s: f64,
    /// Wall-clock seconds since the run started (resumed runs continue the count).
    pub elapsed_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_token_accuracy: Option<f64>,
}

/// `metrics.jsonl` content.
pub fn to_jsonl(metrics: &[StepMetrics]) -> String {
    let mut s = String::new();
    for m in metrics {
        // Serializing plain numbers cannot fail.
        s.push_str(&serde_json::to_string(m).unwrap_or_default());
        s.push('\n');
    }
    s
}

fn polyline(points: &[(f64, f64)], color: &str, map: &dyn Fn(f64, f64) -> (f64, f64)) -> String {
    let pts: Vec<String> = points
        .iter()
        .filter(|(_, y)| y.is_finite())
        .map(|&(x, y)| {
            let (px, py) = map(x, y);
            format!("{px:.1},{py:.1}")
        })
        .collect();
    let mut s = format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
        pts.join(" ")
    );
    if points.len() <= 40 {
        for &(x, y) in points.iter().filter(|(_, y)| y.is_finite()) {
            let (px, py) = map(x, y);
            s.push_str(&format!(
                "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"2.5\" fill=\"{color}\"/>"
            ));
        }
    }
    s
}

/// A line chart of training loss (and eval loss where evaluated) against the step.
pub fn loss_svg(metrics: &[StepMetrics], title: &str) -> String {
    let (w, h) = (720.0, 400.0);
    let (left, right, top, bottom) = (60.0, 20.0, 40.0, 50.0);
    let train: Vec<(f64, f64)> = metrics.iter().map(|m| (m.step as f64, m.loss)).collect();
    let eval: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.eval_loss.map(|l| (m.step as f64, l)))
        .collect();
    let ys = train
        .iter()
        .chain(&eval)
        .map(|p| p.1)
        .filter(|y| y.is_finite());
    let ymax = ys.clone().fold(f64::MIN, f64::max).max(1e-9);
    let ymin = ys.fold(f64::MAX, f64::min).min(ymax).min(0.0);
    let xmax = train.last().map_or(1.0, |p| p.0).max(1.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let map = |x: f64, y: f64| {
        (
            left + pw * (x - 1.0).max(0.0) / (xmax - 1.0).max(1.0),
            top + ph * (1.0 - (y - ymin) / (ymax - ymin).max(1e-12)),
        )
    };
    let mut body = format!(
        "<text x=\"{left}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    body.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#444\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y0}\" stroke=\"#444\"/>",
        y0 = top + ph,
        x1 = left + pw
    ));
    for i in 0..=4 {
        let v = ymin + (ymax - ymin) * i as f64 / 4.0;
        let (_, py) = map(1.0, v);
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.3}</text><line x1=\"{left}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>",
            left - 6.0,
            py + 4.0,
            left + pw
        ));
    }
    body.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">step (1 – {})</text>",
        left + pw / 2.0,
        h - 15.0,
        xmax as usize
    ));
    body.push_str(&polyline(&train, "#1f77b4", &map));
    body.push_str(&format!(
        "<text x=\"{:.1}\" y=\"24\" font-size=\"12\" fill=\"#1f77b4\">train loss</text>",
        w - 220.0
    ));
    if !eval.is_empty() {
        body.push_str(&polyline(&eval, "#d62728", &map));
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"24\" font-size=\"12\" fill=\"#d62728\">eval loss</text>",
            w - 120.0
        ));
    }
    document(w, h, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(step: usize, loss: f64, eval: Option<f64>) -> StepMetrics {
        StepMetrics {
            step,
            epoch: step as f64 / 4.0,
            loss,
            mean_token_accuracy: 0.5,
            lr: 1e-4,
            grad_norm: 1.0,
            tokens_per_s: 100.0,
            elapsed_s: step as f64,
            eval_loss: eval,
            eval_token_accuracy: eval.map(|_| 0.4),
        }
    }

    #[test]
    fn chart_has_both_curves() {
        let ms = vec![m(1, 3.0, None), m(2, 2.0, Some(2.5)), m(3, 1.0, Some(2.0))];
        let svg = loss_svg(&ms, "run");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("eval loss"));
    }

    #[test]
    fn jsonl_round_trips_and_omits_missing_eval() {
        let ms = vec![m(1, 3.0, None), m(2, 2.0, Some(2.5))];
        let text = to_jsonl(&ms);
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines[0].contains("eval_loss"));
        let back: StepMetrics = serde_json::from_str(lines[1]).expect("parses");
        assert_eq!(back, ms[1]);
    }
}
