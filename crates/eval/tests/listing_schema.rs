//! The listing's JSON schema (what evaluation decodes with, and what Ollama's `format` gets)
//! accepts every completion the training sets are made of: constrained decoding can never rule
//! out the answers the tiers were trained to give.

use std::path::Path;
use tierforge_data::completion::{completion, json_schema};
use tierforge_model::JsonSchema;

#[test]
fn every_bundled_completion_fits_the_listing_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/samples.jsonl");
    let read = tierforge_data::read::read_file(&path).unwrap();
    let grammar = JsonSchema::compile(&json_schema()).unwrap();
    let mut n = 0;
    for s in &read.samples {
        let Some(listing) = &s.listing else { continue };
        let text = completion(listing);
        assert!(grammar.accepts_text(&text, true), "{}: {text}", s.id);
        n += 1;
    }
    assert!(n >= 800, "only {n} listings read");
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
