//! Ingest of the bundled stream: idempotent, every event classified, every sample rubric-scored;
//! bad rows rejected with file, line and field while the good rows of the file are stored.

use std::path::{Path, PathBuf};
use tierforge_data::Tier;
use tierforge_eval::feedback::{ingest, stats, IngestOptions, Store};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_same_events_twice_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let opts = IngestOptions {
        files: vec![repo().join("data/feedback.jsonl")],
        store: dir.path().join("s.sqlite"),
        samples: vec![repo().join("data/samples.jsonl")],
        lexicons: None,
    };
    let (a, rej) = ingest(&opts).unwrap();
    assert!(rej.is_empty());
    assert_eq!((a.rows, a.inserted, a.duplicates), (360, 360, 0));
    // data/README.md: 300 positive, 60 negative of which 6 carry a correction.
    assert_eq!((a.positives, a.corrections, a.failures), (300, 6, 54));
    assert_eq!(a.unresolved, 0);
    // Positives point at GOOD samples and corrections are clean: all pass the rubric.
    assert_eq!(a.trainable, 306);
    let (b, _) = ingest(&opts).unwrap();
    assert_eq!((b.inserted, b.duplicates), (0, 360));
    let store = Store::open(&opts.store).unwrap();
    assert_eq!(store.count().unwrap(), 360);
    // Failure examples keep their rubric reports; most low-rated listings break a rule.
    let f = store.failures(Tier::Advanced, None, None).unwrap();
    assert!(f.iter().filter(|x| !x.report.passed).count() * 2 > f.len());
    let st = stats(&store, Some(30 * 86400), None).unwrap();
    assert_eq!(st.to.as_deref(), Some("2026-10-31"));
    let adv = st.tiers.iter().find(|t| t.tier == Tier::Advanced).unwrap();
    let oct17 = adv.days.iter().find(|d| d.day == "2026-10-17").unwrap();
    assert!(oct17.success_rate <= 0.5, "{oct17:?}");
}

#[test]
fn bad_rows_are_rejected_and_good_rows_kept_csv_without_ids_too() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("f.csv");
    std::fs::write(
        &csv,
        "content_id,model,version,rating,comment,timestamp\n\
         s-000001,tierforge-basic,1.0.0,5,fine,2026-11-01T10:00:00Z\n\
         s-000002,tierforge-basic,1.0.0,0,,2026-11-01T10:00:00Z\n\
         s-000003,tierforge-expert,1.0.0,2,\"Sounds robotic, \"\"flat\"\"\",2026-11-02T10:00:00Z\n",
    )
    .unwrap();
    let opts = IngestOptions {
        files: vec![csv.clone()],
        store: dir.path().join("s.sqlite"),
        samples: vec![repo().join("data/samples.jsonl")],
        lexicons: None,
    };
    let (a, rej) = ingest(&opts).unwrap();
    assert_eq!((a.rows, a.inserted, a.rejected), (3, 2, 1));
    assert_eq!(rej[0].line, 3);
    assert_eq!(rej[0].problems[0].field, "rating");
    let (b, _) = ingest(&opts).unwrap();
    assert_eq!((b.inserted, b.duplicates), (0, 2));
}
