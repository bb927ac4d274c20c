//! The evaluation report folder: `eval.json` (everything, machine-readable) and a
//! self-contained `report.html` (inline CSS and SVG, no scripts, no network), plus storing a
//! model's results in the registry next to its version.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tierforge_data::svg::{bar_chart, escape};
use tierforge_data::write::{write_atomic, write_string};

use crate::eval_error::{EvalError, Result};
use crate::evaluate::{EvalRun, ModelResult, OutputFormat};

/// A training loss curve: `(label, [(optimizer step, loss)])`.
pub type LossCurve = (String, Vec<(usize, f64)>);

/// What `eval.json` holds.
#[derive(Serialize)]
struct EvalJson<'a> {
    #[serde(flatten)]
    run: &'a EvalRun,
    /// Sentences for each model that is not better than the one before it.
    not_better: Vec<String>,
    loss_curves: &'a [LossCurve],
}

/// Writes `dir/eval.json` and `dir/report.html` (each atomically) and returns the path of
/// `report.html`. `loss_curves` may be empty (no training in this run).
pub fn write_report(dir: &Path, run: &EvalRun, loss_curves: &[LossCurve]) -> Result<PathBuf> {
    let json = EvalJson {
        run,
        not_better: run.not_better(),
        loss_curves,
    };
    write_atomic(&dir.join("eval.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, &json)?;
        w.write_all(b"\n")
    })?;
    let html_path = dir.join("report.html");
    write_string(&html_path, &html(run, loss_curves))?;
    Ok(html_path)
}

/// Reads `(step, loss)` from a training run's `metrics.jsonl` (one JSON object per line with
/// `step` and `loss`); lines without them are skipped.
pub fn read_loss_curve(metrics_jsonl: &Path) -> Result<Vec<(usize, f64)>> {
    let text = std::fs::read_to_string(metrics_jsonl).map_err(|source| EvalError::Io {
        path: metrics_jsonl.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| EvalError::Input {
            path: metrics_jsonl.to_owned(),
            line: i + 1,
            field: "(record)".into(),
            reason: format!("not JSON: {e}"),
        })?;
        if let (Some(s), Some(l)) = (v["step"].as_u64(), v["loss"].as_f64()) {
            out.push((s as usize, l));
        }
    }
    Ok(out)
}

/// Stores `model`'s evaluation (summary, and the run's comparisons that involve it) as the
/// `eval_metrics` of `tier` `version` in the registry at `registry`. The version must exist.
pub fn store_in_registry(
    registry: &Path,
    tier: &str,
    version: &str,
    run: &EvalRun,
    label: &str,
) -> Result<()> {
    let model = run.model(label).ok_or_else(|| {
        EvalError::Invalid(format!("no model labelled {label:?} in this evaluation"))
    })?;
    let mut reg = tierforge_deploy::registry::Registry::open(registry)?;
    reg.get(tier, version)?;
    let value = registry_value(run, model);
    reg.set_eval(tier, version, &value)?;
    Ok(())
}

/// The JSON stored in the registry for one model.
pub fn registry_value(run: &EvalRun, model: &ModelResult) -> serde_json::Value {
    let label = model.label();
    let comparisons: Vec<_> = run
        .comparisons
        .iter()
        .filter(|c| c.a == label || c.b == label)
        .collect();
    serde_json::json!({
        "label": label,
        "model": model.model,
        "backend": model.backend,
        "summary": model.summary,
        "comparisons": comparisons,
        "max_tokens": run.options.max_tokens,
        "finished_at": run.finished_at,
    })
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}\
.bad{background:#fdecea;border-left:4px solid #c0392b;padding:.5em 1em;margin:.5em 0}\
.good{background:#eafaf1;border-left:4px solid #27ae60;padding:.5em 1em;margin:.5em 0}\
pre{white-space:pre-wrap;word-break:break-word;background:#f8f8f8;padding:.5em;font-size:.85em;max-height:20em;overflow:auto}\
details{margin:.3em 0}summary{cursor:pointer}.muted{color:#777}svg{max-width:100%;height:auto}";

const COLORS: &[&str] = &[
    "#7f8c8d", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#c0392b", "#16a085",
];

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// How answers were decoded, in words.
fn decoding(o: &crate::evaluate::EvalOptions) -> String {
    if o.temperature == 0.0 {
        return "greedy decoding".into();
    }
    let mut s = format!("sampling at temperature {} (seed {}", o.temperature, o.seed);
    if let Some(k) = o.top_k {
        let _ = write!(s, ", top-k {k}");
    }
    if let Some(p) = o.top_p {
        let _ = write!(s, ", top-p {p}");
    }
    s.push(')');
    s
}

/// The whole report page.
pub fn html(run: &EvalRun, loss_curves: &[LossCurve]) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let n = run.models.first().map_or(0, |m| m.products.len());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tierforge evaluation</title><style>{CSS}</style></head><body>\
         <h1>tierforge evaluation</h1><p class=\"muted\">{} models on {n} products; backend {}; {} with repeat penalty {} over the last {} tokens, at most {} tokens, {}; finished at {} (Unix time). \
         Scores are rubric compliance scores (0–100); an answer that does not parse as a listing scores 0 and fails every gate.</p>",
        run.models.len(),
        serde_json::to_value(run.options.backend).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        decoding(&run.options),
        run.options.repeat_penalty,
        run.options.repeat_last_n,
        run.options.max_tokens,
        match run.options.format {
            OutputFormat::Schema => "constrained to the listing's JSON schema (as Ollama's <code>format</code>: the keys, the title and feature lengths, a floor on the description's characters; the text of every field is the model's)",
            OutputFormat::Shape => "constrained to the listing's keys and types, with no length bound",
            OutputFormat::Free => "free text",
        },
        run.finished_at
    );

    h.push_str("<h2>Verdicts</h2>");
    let consecutive: Vec<_> = run
        .models
        .windows(2)
        .filter_map(|w| run.comparison(w[0].label(), w[1].label()))
        .collect();
    if consecutive.is_empty() {
        h.push_str("<p>Only one model: nothing to compare.</p>");
    }
    for c in consecutive {
        let class = if c.better { "good" } else { "bad" };
        let _ = write!(h, "<p class=\"{class}\">{}</p>", escape(&c.sentence()));
    }

    h.push_str("<h2>Summary</h2><table><tr><th>model</th><th>weights</th><th>system prompt</th><th>parse rate</th><th>pass rate</th><th>mean score</th><th>mean tokens</th><th>cut at max</th><th>latency s</th><th>tokens/s</th><th>load s</th></tr>");
    for m in &run.models {
        let s = &m.summary;
        let weights = match &m.model.adapter {
            Some(a) => format!("{} + {}", m.model.model, a.display()),
            None => m.model.model.clone(),
        };
        let _ = write!(
            h,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.0}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td></tr>",
            escape(m.label()),
            escape(&weights),
            m.model.tier,
            pct(s.parse_rate),
            pct(s.pass_rate),
            s.mean_score,
            s.mean_output_tokens,
            s.truncated,
            s.mean_latency_s,
            s.tokens_per_s,
            s.load_s
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Charts</h2>");
    h.push_str(&pass_rate_chart(run));
    h.push_str(&score_histograms(run));
    if !loss_curves.is_empty() {
        h.push_str(&loss_chart(loss_curves));
    }

    h.push_str("<h2>Hard gates (pass rate)</h2><table><tr><th>model</th>");
    let gates: Vec<&String> = run
        .models
        .first()
        .map(|m| m.summary.gate_pass_rates.keys().collect())
        .unwrap_or_default();
    for g in &gates {
        let _ = write!(h, "<th>{}</th>", escape(g));
    }
    h.push_str("</tr>");
    for m in &run.models {
        let _ = write!(h, "<tr><td><b>{}</b></td>", escape(m.label()));
        for g in &gates {
            let v = m.summary.gate_pass_rates.get(*g).copied().unwrap_or(0.0);
            let _ = write!(h, "<td class=\"n\">{}</td>", pct(v));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");

    h.push_str("<h2>Most failed rules</h2><table><tr><th>model</th><th>rules (failed answers among parsed ones)</th></tr>");
    for m in &run.models {
        let rules: Vec<String> = m
            .summary
            .top_failed_rules
            .iter()
            .map(|(r, k)| format!("{r} ×{k}"))
            .collect();
        let _ = write!(
            h,
            "<tr><td><b>{}</b></td><td>{}</td></tr>",
            escape(m.label()),
            if rules.is_empty() {
                "none".into()
            } else {
                escape(&rules.join(", "))
            }
        );
    }
    h.push_str("</table>");

    if !run.comparisons.is_empty() {
        let lvl = format!("{:.0}%", 100.0 * run.options.compare.confidence);
        let _ = write!(
            h,
            "<h2>Paired comparisons</h2><p class=\"muted\">B against A on the same products; differences are B − A; {lvl} percentile-bootstrap intervals ({} resamples, seed {}); ties within {} points. \
             “better” means the whole score-difference interval is above zero.</p>\
             <table><tr><th>A</th><th>B</th><th>n</th><th>wins</th><th>ties</th><th>losses</th><th>mean score diff</th><th>{lvl} interval</th><th>pass rate diff</th><th>{lvl} interval</th><th>B better</th></tr>",
            run.options.compare.resamples, run.options.compare.seed, run.options.compare.epsilon
        );
        for c in &run.comparisons {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:+.1}</td><td class=\"n\">{:+.1} to {:+.1}</td><td class=\"n\">{:+.1} pp</td><td class=\"n\">{:+.1} to {:+.1} pp</td><td>{}</td></tr>",
                escape(&c.a),
                escape(&c.b),
                c.n,
                c.wins,
                c.ties,
                c.losses,
                c.mean_diff,
                c.mean_diff_ci.low,
                c.mean_diff_ci.high,
                100.0 * c.pass_rate_diff,
                100.0 * c.pass_rate_diff_ci.low,
                100.0 * c.pass_rate_diff_ci.high,
                if c.better { "yes" } else { "<b>no</b>" }
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2>Per product</h2>");
    for m in &run.models {
        let _ = write!(
            h,
            "<details><summary><b>{}</b>: {} passed of {}</summary><table><tr><th>product</th><th>score</th><th>pass</th><th>tokens</th><th>why not</th><th>output</th></tr>",
            escape(m.label()),
            m.products.iter().filter(|p| p.passed).count(),
            m.products.len()
        );
        for p in &m.products {
            let why = match (&p.parse_error, &p.report) {
                (Some(e), _) => format!("does not parse: {e}"),
                (None, Some(r)) => r.reasons().join("; "),
                (None, None) => String::new(),
            };
            let _ = write!(
                h,
                "<tr><td>{}<br><span class=\"muted\">{}</span></td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td><details><summary>show</summary><pre>{}</pre></details></td></tr>",
                escape(&p.id),
                escape(&p.product_name),
                p.score,
                if p.passed { "yes" } else { "no" },
                p.output_tokens,
                escape(&why),
                escape(&p.output)
            );
        }
        h.push_str("</table></details>");
    }
    h.push_str("</body></html>\n");
    h
}

fn svg(width: f64, height: f64, body: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" role=\"img\">{body}</svg>"
    )
}

/// Rubric pass rate per model, in percent.
fn pass_rate_chart(run: &EvalRun) -> String {
    let bars: Vec<(String, f64)> = run
        .models
        .iter()
        .map(|m| {
            (
                m.label().to_owned(),
                (1000.0 * m.summary.pass_rate).round() / 10.0,
            )
        })
        .collect();
    let w = (120.0 * bars.len() as f64).max(360.0);
    svg(
        w + 20.0,
        300.0,
        &bar_chart(
            "Rubric pass rate (%)",
            &bars,
            10.0,
            0.0,
            w,
            300.0,
            "#2980b9",
        ),
    )
}

/// Histogram of compliance scores per model, ten-point bins, side by side.
fn score_histograms(run: &EvalRun) -> String {
    let (pw, ph, gap) = (230.0, 170.0, 20.0);
    let k = run.models.len().max(1);
    let width = k as f64 * (pw + gap) + gap;
    let mut body = String::from(
        "<text x=\"10\" y=\"18\" font-size=\"15\" font-weight=\"bold\">Score distribution (products per 10-point bin)</text>",
    );
    let max = run
        .models
        .iter()
        .map(|m| {
            let mut bins = [0usize; 10];
            for p in &m.products {
                bins[(p.score as usize / 10).min(9)] += 1;
            }
            bins.into_iter().max().unwrap_or(0)
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for (mi, m) in run.models.iter().enumerate() {
        let x0 = gap + mi as f64 * (pw + gap);
        let y0 = 40.0;
        let mut bins = [0usize; 10];
        for p in &m.products {
            bins[(p.score as usize / 10).min(9)] += 1;
        }
        let color = COLORS[mi % COLORS.len()];
        let _ = write!(
            body,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\">{} (mean {:.1})</text>",
            x0 + pw / 2.0,
            y0,
            escape(m.label()),
            m.summary.mean_score
        );
        let base = y0 + 10.0 + ph;
        let _ = write!(
            body,
            "<line x1=\"{x0:.1}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\" stroke=\"#444\"/>",
            x0 + pw
        );
        let bw = pw / 10.0;
        for (b, &c) in bins.iter().enumerate() {
            let bh = ph * c as f64 / max;
            let bx = x0 + b as f64 * bw;
            let _ = write!(
                body,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{}–{}: {c}</title></rect>",
                bx + 1.0,
                base - bh,
                bw - 2.0,
                b * 10,
                if b == 9 { 100 } else { b * 10 + 9 }
            );
        }
        for t in [0usize, 50, 100] {
            let tx = x0 + pw * t as f64 / 100.0;
            let _ = write!(
                body,
                "<text x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{t}</text>",
                base + 13.0
            );
        }
    }
    svg(width, 40.0 + 10.0 + ph + 25.0, &body)
}

/// Training loss against optimizer step, one line per curve.
fn loss_chart(curves: &[LossCurve]) -> String {
    let (w, h, left, top, right, bottom) = (760.0, 320.0, 60.0, 30.0, 150.0, 40.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let pts = curves.iter().flat_map(|c| c.1.iter());
    let max_step = pts.clone().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let finite = || pts.clone().map(|p| p.1).filter(|l| l.is_finite());
    let max_loss = finite().fold(f64::MIN, f64::max);
    let min_loss = finite().fold(f64::MAX, f64::min).min(max_loss);
    let (lo, hi) = if max_loss > min_loss {
        (min_loss, max_loss)
    } else {
        (min_loss - 0.5, max_loss + 0.5)
    };
    let x = |s: usize| left + pw * s as f64 / max_step;
    let y = |l: f64| top + ph * (1.0 - (l - lo) / (hi - lo));
    let mut body = format!(
        "<text x=\"10\" y=\"18\" font-size=\"15\" font-weight=\"bold\">Training loss</text>\
         <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"#444\"/>",
        top + ph,
        left + pw,
        top + ph,
        top + ph
    );
    for (v, label) in [(lo, lo), (hi, hi), ((lo + hi) / 2.0, (lo + hi) / 2.0)] {
        let _ = write!(
            body,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{label:.2}</text>",
            left - 4.0,
            y(v) + 3.0
        );
    }
    let _ = write!(
        body,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">step {}</text>",
        left + pw,
        top + ph + 16.0,
        max_step
    );
    for (i, (label, points)) in curves.iter().enumerate() {
        let color = COLORS[(i + 1) % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(s, l)| format!("{:.1},{:.1}", x(s), y(l)))
            .collect();
        let _ = write!(
            body,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            path.join(" "),
            left + pw + 15.0,
            top + 18.0 * i as f64,
            left + pw + 32.0,
            top + 18.0 * i as f64 + 10.0,
            escape(label)
        );
    }
    svg(w, h, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::CompareOptions;
    use crate::evaluate::{
        comparisons, score_output, summarise, Backend, EvalOptions, EvalProduct, ModelUnderTest,
    };
    use tierforge_data::completion::Tier;
    use tierforge_data::{ProductInput, Rubric};

    fn run_with(outputs: &[(&str, Vec<String>)]) -> EvalRun {
        let rubric = Rubric::default();
        let products: Vec<EvalProduct> = (0..outputs[0].1.len())
            .map(|i| EvalProduct {
                id: format!("p{i}"),
                input: ProductInput {
                    product_name: format!("Acme <Widget> {i}"),
                    ..Default::default()
                },
            })
            .collect();
        let models: Vec<ModelResult> = outputs
            .iter()
            .map(|(label, outs)| {
                let results: Vec<_> = products
                    .iter()
                    .zip(outs)
                    .map(|(p, o)| score_output(p, o.clone(), 5, "eos".into(), 0.1, &rubric))
                    .collect();
                ModelResult {
                    model: ModelUnderTest {
                        label: (*label).into(),
                        model: "m.gguf".into(),
                        adapter: None,
                        tier: Tier::Expert,
                        ollama_name: None,
                        system_prompt: None,
                    },
                    backend: Backend::Candle,
                    summary: summarise(&results, 1.0, 0.1),
                    products: results,
                }
            })
            .collect();
        let comparisons = comparisons(&models, &CompareOptions::default()).expect("compare");
        EvalRun {
            finished_at: 0,
            options: EvalOptions::default(),
            models,
            comparisons,
        }
    }

    #[test]
    fn report_files_are_written_and_say_when_a_model_is_not_better() {
        let bad = "not json <script>".to_string();
        let run = run_with(&[
            ("base", vec![bad.clone(), bad.clone()]),
            ("basic", vec![bad.clone(), bad]),
        ]);
        let dir = tempfile::tempdir().expect("tempdir");
        let curves = vec![("basic".to_string(), vec![(1, 2.5), (2, 1.9), (3, 1.2)])];
        let path = write_report(dir.path(), &run, &curves).expect("report");
        let html = std::fs::read_to_string(&path).expect("read");
        assert!(
            html.contains("basic is NOT shown to be better than base"),
            "verdict"
        );
        assert!(
            html.contains("&lt;script&gt;") && !html.contains("<script>"),
            "escaped"
        );
        assert!(html.contains("Acme &lt;Widget&gt; 0"));
        assert!(html.contains("<polyline") && html.contains("Rubric pass rate"));
        assert!(!html.contains("<script"), "no scripts in the report");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("eval.json")).expect("json"),
        )
        .expect("valid json");
        assert_eq!(json["models"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["not_better"].as_array().map(Vec::len), Some(1));
        assert_eq!(json["loss_curves"][0][1][2][1], 1.2);
        let back: EvalRun = serde_json::from_value(json).expect("eval.json reads back");
        assert_eq!(back.models, run.models);
    }

    #[test]
    fn results_go_to_the_registry_next_to_the_version() {
        use tierforge_deploy::registry::{Registry, Status, VersionRecord};
        let run = run_with(&[("base", vec!["x".into()]), ("basic", vec!["y".into()])]);
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("registry.db");
        let mut reg = Registry::open(&db).expect("open");
        reg.add(&VersionRecord {
            tier: "basic".into(),
            version: "1.0.0".into(),
            parent_version: None,
            base_model: "m.gguf".into(),
            dataset_hash: "d".into(),
            dataset_size: 1,
            config_hash: "c".into(),
            train_metrics: serde_json::json!({}),
            eval_metrics: serde_json::json!({}),
            gguf_path: None,
            gguf_sha256: None,
            gguf_size: None,
            ollama_name: None,
            ollama_digest: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            status: Status::Candidate,
            note: None,
        })
        .expect("add");
        drop(reg);
        store_in_registry(&db, "basic", "1.0.0", &run, "basic").expect("store");
        let got = Registry::open(&db)
            .expect("open")
            .get("basic", "1.0.0")
            .expect("get");
        assert_eq!(got.eval_metrics["label"], "basic");
        assert_eq!(got.eval_metrics["comparisons"][0]["a"], "base");
        assert!(store_in_registry(&db, "basic", "9.9.9", &run, "basic").is_err());
        assert!(store_in_registry(&db, "basic", "1.0.0", &run, "nope").is_err());
    }
}
