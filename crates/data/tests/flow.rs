//! The bundled corpus end to end through the library: app format → messages JSONL → parser,
//! dedup, split, augment and tiers.

use std::path::PathBuf;
use tierforge_data::completion::{parse_user_prompt, Tier};
use tierforge_data::export::{export_line, ExportFormat};
use tierforge_data::read::{read_bytes, read_file};
use tierforge_data::tiers::{build_tier, TierSpec, TiersConfig};
use tierforge_data::{augment, dedup, rng::Rng, score_all, split, Rubric};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/samples.jsonl")
}

#[test]
fn app_records_round_trip_through_messages_and_the_parser() {
    let data = read_file(&corpus()).unwrap();
    assert!(data.rejects.is_empty());
    let mut exported = String::new();
    for s in &data.samples {
        exported.push_str(
            &export_line(
                s,
                ExportFormat::Messages,
                Some(Tier::Expert.system_prompt()),
            )
            .unwrap(),
        );
        exported.push('\n');
    }
    let back = read_bytes(exported.as_bytes(), "export.jsonl");
    assert!(back.rejects.is_empty());
    assert_eq!(back.samples.len(), data.samples.len());
    for (a, b) in data.samples.iter().zip(&back.samples) {
        assert_eq!(a.listing, b.listing, "{}", a.id);
        let mut ai = a.input.clone().unwrap();
        ai.user_context.model_used = None;
        ai.user_context.tone.get_or_insert("professional".into());
        ai.user_context.language.get_or_insert("en".into());
        assert_eq!(Some(ai), b.input, "{}", a.id);
        assert_eq!(b.messages[0].content, Tier::Expert.system_prompt());
        assert!(parse_user_prompt(&b.messages[1].content).is_some());
    }
    // prompt/completion round trip too.
    let pc: String = data
        .samples
        .iter()
        .map(|s| export_line(s, ExportFormat::PromptCompletion, Some("sys")).unwrap() + "\n")
        .collect();
    let back = read_bytes(pc.as_bytes(), "pc.jsonl");
    assert!(back
        .samples
        .iter()
        .zip(&data.samples)
        .all(|(b, a)| b.listing == a.listing));
}

#[test]
fn corpus_has_the_promised_spread() {
    let data = read_file(&corpus()).unwrap();
    let rubric = Rubric::default();
    let scored = score_all(&rubric, &data.samples);
    assert!(data.samples.len() >= 800);
    let cats: std::collections::BTreeSet<&str> =
        data.samples.iter().map(|s| s.top_category()).collect();
    assert!(cats.len() >= 5, "{cats:?}");
    let passed = scored.iter().filter(|s| s.passed()).count();
    let fail_share = 1.0 - passed as f64 / scored.len() as f64;
    assert!((0.1..0.4).contains(&fail_share), "fail share {fail_share}");
    let expert = scored
        .iter()
        .filter(|s| s.passed() && s.score() >= 90)
        .count();
    assert!(expert >= 550, "{expert} samples at 90+");
}

#[test]
fn dedup_split_augment_and_tiers_on_the_corpus() {
    let data = read_file(&corpus()).unwrap();
    let rubric = Rubric::default();
    let scored = score_all(&rubric, &data.samples);
    let scores: Vec<u8> = scored.iter().map(|s| s.score()).collect();
    let d = dedup::dedup(&data.samples, &scores, dedup::DedupConfig::default());
    assert!(
        d.exact_dropped > 0 && d.near_dropped > 0,
        "the corpus plants duplicates"
    );
    // Splits are deterministic and stratified.
    let a = split::split(&data.samples, 0.1, 3);
    assert_eq!(a, split::split(&data.samples, 0.1, 3));
    assert_ne!(a, split::split(&data.samples, 0.1, 4));
    let val_share = a.val.len() as f64 / data.samples.len() as f64;
    assert!((0.08..0.12).contains(&val_share));
    // Augmented variants pass and never land in validation.
    let syn = augment::builtin_synonyms();
    let mut rng = Rng::new(5);
    let passing: Vec<_> = data
        .samples
        .iter()
        .zip(&scored)
        .filter(|(_, s)| s.passed())
        .map(|(x, _)| x)
        .take(40)
        .collect();
    let mut lines = Vec::new();
    for s in &passing {
        for v in augment::augment_sample(s, &rubric, &syn, 2, &mut rng) {
            assert!(rubric.score(&v.listing, s.input.as_ref()).passed);
            lines.push(v.record.to_string());
        }
    }
    assert!(lines.len() >= 40, "{} variants", lines.len());
    let aug = read_bytes(lines.join("\n").as_bytes(), "aug.jsonl");
    assert!(aug.samples.iter().all(|s| s.is_augmented()));
    let sp = split::split(&aug.samples, 0.5, 1);
    assert!(sp.val.is_empty());
    // Tiers fill, and a tier that cannot be filled says how many are missing.
    let sets = tierforge_data::tiers::build_tiers(&TiersConfig::default(), &data.samples, &scored)
        .unwrap();
    assert_eq!(sets[0].members.len(), 60);
    assert!(sets[2].members.len() >= 500);
    assert!(sets[2].members.iter().all(|&i| scored[i].score() >= 90));
    let err = build_tier(
        Tier::Expert,
        TierSpec {
            min_samples: 5000,
            min_score: 90,
            max_samples: None,
        },
        &data.samples,
        &scored,
        0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn summary_counts_each_failed_rule_once_per_sample() {
    let data = read_file(&corpus()).unwrap();
    let scored = score_all(&Rubric::default(), &data.samples);
    let summary = tierforge_data::summarise(&scored);
    // The straightforward count: samples with a failed result for the rule.
    for spec in tierforge_data::rubric::RULES {
        let failed = scored
            .iter()
            .filter_map(|s| s.report.as_ref())
            .filter(|r| r.rules.iter().any(|x| x.id == spec.id && !x.passed))
            .count();
        let listed = summary
            .most_failed_rules
            .iter()
            .find(|r| r.id == spec.id)
            .map_or(0, |r| r.failed);
        assert_eq!(listed, failed, "{}", spec.id);
    }
    // The bundled corpus fails for varied reasons: the summary has several rules to list.
    assert!(
        summary.most_failed_rules.len() >= 5,
        "{:?}",
        summary.most_failed_rules
    );
}

#[test]
fn filtering_in_pieces_keeps_and_drops_what_the_scores_say() {
    use tierforge_data::filter::{dropped_row, filter_files, keeps, unread_row};
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(corpus()).unwrap();
    let records: Vec<&str> = text.lines().collect();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        format!(
            "{}\nnot json\n{}\n",
            records[..500].join("\n"),
            records[500..].join("\n")
        ),
    )
    .unwrap();
    let rubric = Rubric::default();
    let whole = read_file(&input).unwrap();
    let scored = score_all(&rubric, &whole.samples);
    let mut want_kept = String::new();
    let mut want_rejects: Vec<serde_json::Value> = whole.rejects.iter().map(unread_row).collect();
    for (sample, s) in whole.samples.iter().zip(&scored) {
        if keeps(s, 80) {
            want_kept.push_str(sample.raw.trim_end());
            want_kept.push('\n');
        } else {
            want_rejects.push(dropped_row(sample, s));
        }
    }
    for piece in [100, 1 << 20] {
        let (out, rej) = (
            dir.path().join("kept.jsonl"),
            dir.path().join("rejects.jsonl"),
        );
        let done = filter_files(&[&input], &rubric, 80, &out, Some(&rej), piece).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            want_kept,
            "piece {piece}"
        );
        let got: Vec<serde_json::Value> = std::fs::read_to_string(&rej)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got, want_rejects, "piece {piece}");
        assert_eq!((done.samples, done.unread.len()), (900, 1));
        assert_eq!(done.kept + done.rejected, 900);
        assert_eq!(done.kept, want_kept.lines().count());
        assert_eq!(done.summary.count, 900);
    }
    // A file that cannot be read: an error, and no output at all.
    let missing = dir.path().join("missing.jsonl");
    let out = dir.path().join("never.jsonl");
    assert!(filter_files(&[&missing], &rubric, 80, &out, None, 1 << 20).is_err());
    assert!(!out.exists());
}
