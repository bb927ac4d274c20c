//! The listing's JSON schema (what evaluation decodes with, and what Ollama's `format` gets)
//! accepts every completion that passes the rubric's hard gates, so constrained decoding never
//! rules out an answer the rubric would pass; the shape schema accepts every completion.

use std::path::Path;
use tierforge_data::completion::{completion, json_schema, shape_schema};
use tierforge_data::rubric::Rubric;
use tierforge_model::JsonSchema;

#[test]
fn every_bundled_completion_fits_the_listing_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/samples.jsonl");
    let read = tierforge_data::read::read_file(&path).unwrap();
    let grammar = JsonSchema::compile(&json_schema()).unwrap();
    let shape = JsonSchema::compile(&shape_schema()).unwrap();
    let rubric = Rubric::default();
    let (mut n, mut passing, mut ruled_out) = (0, 0, 0);
    for s in &read.samples {
        let Some(listing) = &s.listing else { continue };
        let text = completion(listing);
        assert!(shape.accepts_text(&text, true), "{}: {text}", s.id);
        let gates = rubric.score(listing, s.input.as_ref()).gates;
        let gates_pass = gates
            .iter()
            .filter(|g| g.id != "compliance")
            .all(|g| g.passed);
        let fits = grammar.accepts_text(&text, true);
        if gates_pass {
            assert!(fits, "{} passes the gates but not the schema: {text}", s.id);
            passing += 1;
        }
        // The bounds are the gates: what they rule out fails a gate.
        if !fits {
            assert!(!gates_pass, "{}", s.id);
            ruled_out += 1;
        }
        n += 1;
    }
    assert!(n >= 800, "only {n} listings read");
    assert!(
        passing >= 600 && ruled_out > 0,
        "{passing} pass, {ruled_out} ruled out"
    );
    // And what the schema rules out is what the parser rejects.
    for bad in [
        r#"{"title":"T","features":["a"},"description":"d"}"#,
        r#"{"title":"T","description":"d"}"#,
        r#"{"title":"T","features":"a","description":"d"}"#,
    ] {
        assert!(!grammar.accepts_text(bad, true), "{bad}");
        assert!(
            tierforge_data::completion::parse_completion(bad).is_err(),
            "{bad}"
        );
    }
}
