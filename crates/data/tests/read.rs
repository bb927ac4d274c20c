//! Reading bad input: a clear problem per record, nothing lost, no panics.

use proptest::prelude::*;
use tierforge_data::read::read_bytes;
use tierforge_data::sample::SourceFormat;

fn app_line(id: &str) -> String {
    serde_json::json!({
        "id": id,
        "timestamp": "2026-09-01T10:00:00Z",
        "input": {"product_name": "Northpeak Headphones", "features": ["40h battery"], "category": "Electronics > Headphones",
                  "user_context": {"model_used": "m", "language": "en", "tone": "friendly"}},
        "output": {"title": "Northpeak Headphones", "features_formatted": ["A", "B", "C"], "description": "<p>Text</p>",
                   "metadata": {"word_count": 1, "character_count": 11, "seo_score": 50, "walmart_compliance": 90}},
        "quality_metrics": {"title_length": 20, "features_count": 3, "description_words": 1, "overall_score": 88},
        "custom_field": {"kept": true}
    })
    .to_string()
}

#[test]
fn jsonl_with_bom_and_crlf_reads_every_line() {
    let text = format!("\u{feff}{}\r\n\r\n{}\r\n", app_line("a"), app_line("b"));
    let out = read_bytes(text.as_bytes(), "x.jsonl");
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    assert_eq!(out.samples.len(), 2);
    assert_eq!(out.samples[1].origin.line, 3);
    assert_eq!(out.samples[0].format, SourceFormat::App);
    assert!(
        out.samples[0].raw.contains("custom_field"),
        "unknown fields are kept"
    );
}

/// Files larger than a block are read on all threads: samples and rejects still come back in
/// file order with their own line numbers.
#[test]
fn large_jsonl_keeps_file_order_and_line_numbers() {
    let mut text = String::new();
    let mut expected_bad = Vec::new();
    for line in 1..=12_000 {
        if line % 997 == 0 {
            text.push_str("{\"broken\": \n");
            expected_bad.push(line);
        } else if line % 501 == 0 {
            text.push_str("   \r\n"); // blank: skipped, but counted
        } else {
            text.push_str(&app_line(&format!("s{line}")));
            text.push('\n');
        }
    }
    assert!(
        text.len() > 4 << 20,
        "spans several 1 MiB blocks: {}",
        text.len()
    );
    let out = read_bytes(text.as_bytes(), "big.jsonl");
    let bad: Vec<usize> = out.rejects.iter().map(|r| r.line).collect();
    assert_eq!(bad, expected_bad);
    assert!(out
        .samples
        .iter()
        .all(|s| s.id == format!("s{}", s.origin.line)));
    let lines: Vec<usize> = out.samples.iter().map(|s| s.origin.line).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "file order");
    assert_eq!(
        out.samples.len(),
        12_000
            - expected_bad.len()
            - (1..=12_000)
                .filter(|l| l % 501 == 0 && l % 997 != 0)
                .count()
    );
}

#[test]
fn malformed_json_names_line_and_column_and_keeps_the_rest() {
    let text = format!(
        "{}\n{{\"input\": {{\"product_name\": }}\n{}\n",
        app_line("a"),
        app_line("c")
    );
    let out = read_bytes(text.as_bytes(), "x.jsonl");
    assert_eq!(out.samples.len(), 2);
    assert_eq!(out.rejects.len(), 1);
    let p = &out.rejects[0].problems[0];
    assert_eq!(p.line, 2);
    let shown = p.to_string();
    assert!(
        shown.starts_with("x.jsonl:2: -: invalid JSON at "),
        "{shown}"
    );
    assert!(shown.contains("column"), "{shown}");
}

#[test]
fn wrong_types_and_missing_fields_name_the_field() {
    let mut v: serde_json::Value = serde_json::from_str(&app_line("a")).unwrap();
    v["output"]["features_formatted"] = serde_json::json!("not a list");
    let mut w: serde_json::Value = serde_json::from_str(&app_line("b")).unwrap();
    w["output"].as_object_mut().unwrap().remove("title");
    let mut r: serde_json::Value = serde_json::from_str(&app_line("c")).unwrap();
    r["feedback"] = serde_json::json!({"rating": 9});
    let text = format!("{v}\n{w}\n{r}\n");
    let out = read_bytes(text.as_bytes(), "d.jsonl");
    assert_eq!(out.samples.len(), 0);
    let shown: Vec<String> = out.problems().map(|p| p.to_string()).collect();
    assert!(
        shown[0].starts_with("d.jsonl:1: output.features_formatted: "),
        "{shown:?}"
    );
    assert!(shown[0].contains("expected a sequence"), "{shown:?}");
    assert!(
        shown[1].starts_with("d.jsonl:2: output.title: missing field"),
        "{shown:?}"
    );
    assert!(
        shown[2].starts_with("d.jsonl:3: feedback.rating: "),
        "{shown:?}"
    );
}

#[test]
fn empty_file_is_one_clear_problem() {
    for text in ["", "   \n\n", "\u{feff}"] {
        let out = read_bytes(text.as_bytes(), "e.jsonl");
        assert_eq!(out.samples.len(), 0);
        assert_eq!(out.rejects.len(), 1);
        assert!(out.rejects[0].problems[0].reason.contains("empty"));
    }
}

#[test]
fn invalid_utf8_line_is_rejected_alone() {
    let mut bytes = app_line("a").into_bytes();
    bytes.extend_from_slice(b"\n{\"prompt\": \"\xff\xfe\", \"completion\": \"x\"}\n");
    bytes.extend_from_slice(app_line("c").as_bytes());
    let out = read_bytes(&bytes, "u.jsonl");
    assert_eq!(out.samples.len(), 2);
    assert_eq!(out.rejects.len(), 1);
    assert_eq!(out.rejects[0].problems[0].class, "encoding");
    assert_eq!(out.rejects[0].line, 2);
}

#[test]
fn fifty_megabyte_line_does_not_panic() {
    let big = "x".repeat(50 * 1024 * 1024);
    let text = format!(
        "{}\n{{\"prompt\": \"{big}\", \"completion\": 5}}\n",
        app_line("a")
    );
    let out = read_bytes(text.as_bytes(), "big.jsonl");
    assert_eq!(out.samples.len(), 1);
    assert_eq!(out.rejects.len(), 1);
    assert!(
        out.rejects[0].raw.len() <= 64 * 1024,
        "rejects keep a bounded copy"
    );
    assert_eq!(out.rejects[0].problems[0].field, "completion");
}

#[test]
fn json_array_of_100k_samples_reads_with_lines() {
    let line = app_line("x");
    let mut text = String::from("[\n");
    for i in 0..100_000 {
        if i > 0 {
            text.push_str(",\n");
        }
        text.push_str(&line);
    }
    text.push_str("\n]\n");
    let out = read_bytes(text.as_bytes(), "arr.json");
    assert!(out.rejects.is_empty());
    assert_eq!(out.samples.len(), 100_000);
    assert_eq!(out.samples[0].origin.line, 2);
    assert_eq!(out.samples[99_999].origin.line, 100_001);
}

#[test]
fn broken_json_array_is_reported_with_its_line() {
    let text = format!("[\n{},\n{{\"input\": ]\n", app_line("a"));
    let out = read_bytes(text.as_bytes(), "arr.json");
    assert_eq!(out.samples.len(), 0);
    assert_eq!(out.rejects.len(), 1);
    assert_eq!(out.rejects[0].problems[0].line, 3);
}

#[test]
fn array_element_type_errors_are_per_element() {
    let mut bad: serde_json::Value = serde_json::from_str(&app_line("b")).unwrap();
    bad["input"]["features"] = serde_json::json!(7);
    let text = format!("[\n{},\n{bad}\n]", app_line("a"));
    let out = read_bytes(text.as_bytes(), "arr.json");
    assert_eq!(out.samples.len(), 1);
    assert_eq!(out.rejects[0].line, 3);
    assert_eq!(out.rejects[0].problems[0].field, "input.features");
}

#[test]
fn chat_records_use_openai_error_classes() {
    let cases = [
        (r#"{"messages": "hi"}"#, "missing_messages_list"),
        (r#"{"messages": [{"content": "x"}]}"#, "message_missing_key"),
        (
            r#"{"messages": [{"role": "user", "content": "x", "mood": 1}, {"role": "assistant", "content": "y"}]}"#,
            "message_unrecognized_key",
        ),
        (
            r#"{"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]}"#,
            "unrecognized_role",
        ),
        (
            r#"{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}"#,
            "missing_content",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x"}]}"#,
            "example_missing_assistant_message",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 2}]}"#,
            "invalid_weight",
        ),
        (r#"[1, 2]"#, "data_type"),
    ];
    for (line, class) in cases {
        // Twice as JSON Lines, except the last case: a JSON array file whose elements are not objects.
        let text = if line.starts_with('[') {
            line.to_owned()
        } else {
            format!("{line}\n{line}")
        };
        let out = read_bytes(text.as_bytes(), "c.jsonl");
        let classes: Vec<&str> = out.problems().map(|p| p.class.as_str()).collect();
        assert!(classes.contains(&class), "{line}: {classes:?}");
    }
}

#[test]
fn chat_and_prompt_completion_are_normalised() {
    let listing = r#"{\"title\":\"T\",\"features\":[\"A\"],\"description\":\"D\"}"#;
    let chat = format!(
        r#"{{"messages": [{{"role": "system", "content": "s"}}, {{"role": "user", "content": "Product: P\nCategory: A > B\nFeatures:\n- f"}}, {{"role": "assistant", "content": "{listing}"}}]}}"#
    );
    let pc = format!(r#"{{"prompt": "Product: P\nCategory: A > B", "completion": "{listing}"}}"#);
    let bad = r#"{"prompt": "Hello", "completion": "not json"}"#;
    let out = read_bytes(format!("{chat}\n{pc}\n{bad}\n").as_bytes(), "m.jsonl");
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    assert_eq!(out.samples[0].format, SourceFormat::Messages);
    assert_eq!(out.samples[0].input.as_ref().unwrap().category, "A > B");
    assert_eq!(out.samples[0].listing.as_ref().unwrap().title, "T");
    assert_eq!(out.samples[1].format, SourceFormat::PromptCompletion);
    assert_eq!(out.samples[1].listing.as_ref().unwrap().features, ["A"]);
    assert!(out.samples[2].listing.is_none());
    assert!(out.samples[2]
        .listing_error
        .as_ref()
        .unwrap()
        .contains("no JSON object"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let out = read_bytes(&bytes, "fuzz");
        for r in &out.rejects {
            prop_assert!(!r.problems.is_empty());
        }
    }

    #[test]
    fn reader_never_panics_on_json_like_text(s in r#"[\[\]{}":,\\ a-z0-9\n]{0,200}"#) {
        let _ = read_bytes(s.as_bytes(), "fuzz");
        let _ = tierforge_data::parse_completion(&s);
        let _ = tierforge_data::completion::parse_user_prompt(&s);
    }

    #[test]
    fn listing_round_trips_through_the_completion_format(
        title in "\\PC{0,120}",
        features in proptest::collection::vec("\\PC{0,90}", 0..12),
        description in "\\PC{0,400}",
    ) {
        let l = tierforge_data::Listing { title, features, description };
        let text = tierforge_data::completion::completion(&l);
        prop_assert_eq!(tierforge_data::parse_completion(&text).unwrap(), l);
    }

    #[test]
    fn rubric_never_panics(title in "\\PC{0,200}", f in proptest::collection::vec("\\PC{0,100}", 0..12), d in "\\PC{0,600}") {
        let l = tierforge_data::Listing { title, features: f, description: d };
        let r = tierforge_data::Rubric::default().score(&l, None);
        prop_assert!(r.score <= 100);
    }
}

/// Reading in pieces gives what reading whole gives, whatever the piece size: BOM, CRLF, blank
/// lines, lines longer than a piece, invalid UTF-8, broken JSON, a last line without a line end,
/// arrays, empty and blank files.
#[test]
fn reading_in_pieces_equals_reading_whole() {
    use tierforge_data::read::{read_file, read_files_in_pieces};
    let dir = tempfile::tempdir().unwrap();
    let long = app_line(&"x".repeat(5000));
    let mut bad_utf8 = app_line("u").into_bytes();
    bad_utf8[30] = 0xFF;
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "mixed.jsonl",
            [
                format!("\u{feff}\r\n\n{}\r\n", app_line("a")).into_bytes(),
                bad_utf8,
                format!("\n{{\"broken\": \n{}\n\n   \n{}", long, app_line("z")).into_bytes(),
            ]
            .concat(),
        ),
        (
            "ends.jsonl",
            format!("{}\n{}\n", app_line("a"), app_line("b")).into_bytes(),
        ),
        (
            "array.json",
            format!("\n [{}, {}]", app_line("a"), app_line("b")).into_bytes(),
        ),
        ("empty.jsonl", Vec::new()),
        ("blank.jsonl", b" \n\r\n\t\n".to_vec()),
    ];
    let corpus =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/samples.jsonl");
    let mut paths = vec![corpus];
    for (name, bytes) in &files {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    for path in &paths {
        let whole = read_file(path).unwrap();
        for piece in [1, 7, 100, 4096, 1 << 20] {
            let (mut samples, mut rejects) = (Vec::new(), Vec::new());
            read_files_in_pieces(&[path], piece, |o| {
                samples.extend(o.samples);
                rejects.extend(o.rejects);
            })
            .unwrap();
            let name = format!("{} in pieces of {piece}", path.display());
            assert_eq!(
                format!("{samples:?}"),
                format!("{:?}", whole.samples),
                "{name}"
            );
            assert_eq!(
                format!("{rejects:?}"),
                format!("{:?}", whole.rejects),
                "{name}"
            );
        }
    }
}
