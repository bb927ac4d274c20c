//! The rubric's hard gates at their boundaries, and every compliance rule with a positive and a
//! negative example.

use tierforge_data::rubric::{Report, Rubric, RULES};
use tierforge_data::sample::{Listing, ProductInput};

fn product() -> ProductInput {
    ProductInput {
        product_name: "Northpeak Trail Wireless Headphones".into(),
        features: vec!["40h battery".into()],
        category: "Electronics > Headphones".into(),
        ..Default::default()
    }
}

/// `n` words of plain English prose.
fn prose(n: usize) -> String {
    let base = "These headphones are built for long days on the move and the soft cushions sit gently on the ears while the folding frame packs into a small pouch for travel and the controls on the side let you change tracks without reaching for the phone";
    let words: Vec<&str> = base.split(' ').collect();
    (0..n)
        .map(|i| words[i % words.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn good() -> Listing {
    Listing {
        // 63 characters.
        title: "Northpeak Trail Wireless Headphones with 40-Hour Battery, Black".into(),
        features: vec![
            "Bluetooth 5.3 keeps a stable link up to 30 feet away".into(),
            "40-hour battery life on a single charge".into(),
            "Soft memory foam ear cushions for long sessions".into(),
            "Foldable design fits into the included travel pouch".into(),
        ],
        description: format!("<p>{}</p>", prose(160)),
    }
}

fn score(l: &Listing) -> Report {
    Rubric::default().score(l, Some(&product()))
}

fn rule<'a>(r: &'a Report, id: &str) -> &'a tierforge_data::rubric::RuleResult {
    r.rules.iter().find(|x| x.id == id).unwrap()
}

fn gate(r: &Report, id: &str) -> bool {
    r.gate(id).unwrap().passed
}

#[test]
fn good_listing_scores_100_and_passes() {
    let r = score(&good());
    assert_eq!(r.score, 100, "{:#?}", r.reasons());
    assert!(r.passed);
    assert_eq!(RULES.iter().map(|r| r.points as u32).sum::<u32>(), 100);
}

fn title_of(n: usize) -> String {
    let mut t = String::from("Northpeak Headphones 40h ");
    while t.chars().count() < n {
        t.push('a');
    }
    t
}

#[test]
fn title_gate_boundaries_count_characters_not_bytes() {
    for (n, ok) in [(49, false), (50, true), (100, true), (101, false)] {
        let mut l = good();
        l.title = title_of(n);
        assert_eq!(l.title.chars().count(), n);
        let r = score(&l);
        assert_eq!(gate(&r, "title_length"), ok, "{n} chars");
        assert_eq!(rule(&r, "T-LEN").passed, ok, "{n} chars");
    }
    // 50 characters of which several are multi-byte: 50 chars, more than 50 bytes.
    let mut l = good();
    l.title = "Northpeak Café Headphones 40h éééééééééééééééééééé".into();
    assert_eq!(l.title.chars().count(), 50);
    assert!(l.title.len() > 50);
    assert!(gate(&score(&l), "title_length"));
    l.title.pop();
    assert!(!gate(&score(&l), "title_length"));
}

#[test]
fn title_over_150_is_a_hard_fail() {
    let mut l = good();
    l.title = title_of(151);
    let r = score(&l);
    assert!(r.hard_failed);
    assert!(r.score <= 59);
    l.title = title_of(150);
    assert!(!score(&l).hard_failed);
}

#[test]
fn feature_count_boundaries() {
    for (n, ok) in [(2, false), (3, true), (10, true), (11, false)] {
        let mut l = good();
        l.features = (0..n)
            .map(|i| format!("Feature number {i} with detail"))
            .collect();
        let r = score(&l);
        assert_eq!(gate(&r, "feature_count"), ok, "{n} features");
        assert_eq!(rule(&r, "F-CNT").passed, ok, "{n} features");
    }
}

#[test]
fn feature_length_boundaries() {
    for (n, ok) in [(80, true), (81, false)] {
        let mut l = good();
        let mut f = String::from("Long feature ");
        while f.chars().count() < n {
            f.push('x');
        }
        l.features[0] = f;
        let r = score(&l);
        assert_eq!(gate(&r, "feature_length"), ok, "{n} chars");
        assert_eq!(rule(&r, "F-LEN").passed, ok, "{n} chars");
    }
    let mut l = good();
    l.features[1] = "   ".into();
    assert!(!gate(&score(&l), "feature_length"));
}

#[test]
fn description_word_boundaries_with_and_without_html() {
    for (n, ok) in [(149, false), (150, true)] {
        let mut l = good();
        l.description = prose(n);
        assert_eq!(gate(&score(&l), "description_words"), ok, "plain {n}");
        // Tags and entities are not words; tags separate words.
        l.description = format!(
            "<p>{}</p><ul><li>&amp;</li></ul>",
            prose(n).replacen(' ', "</p><p>", 3)
        );
        let r = score(&l);
        assert_eq!(r.description_words, n, "html {n}");
        assert_eq!(gate(&r, "description_words"), ok, "html {n}");
    }
    let mut l = good();
    l.description = prose(49);
    let r = score(&l);
    assert!(r.hard_failed, "under 50 words is a hard fail");
}

/// Applies `bad` to a good listing and checks that exactly `id` fails, with evidence.
fn fails_only(id: &str, bad: impl Fn(&mut Listing)) -> Report {
    let mut l = good();
    bad(&mut l);
    let r = score(&l);
    let failed: Vec<&str> = r.failed_rules().map(|x| &*x.id).collect();
    assert_eq!(
        failed,
        [id],
        "expected only {id} to fail: {:#?}",
        r.reasons()
    );
    assert!(!rule(&r, id).evidence.is_empty());
    r
}

#[test]
fn t_form_needs_brand_noun_and_attribute() {
    fails_only("T-FORM", |l| {
        l.title = "northpeak Trail Wireless Headphones with Long Battery Life, Black".into()
    });
    fails_only("T-FORM", |l| {
        l.title = "Northpeak Trail Wireless Earmuffs with Long Battery Life Design".into()
    });
    fails_only("T-FORM", |l| {
        l.title = "Northpeak Trail Wireless Headphones with Long Battery Life Design".into()
    });
}

#[test]
fn t_case_flags_all_caps_but_not_acronyms() {
    fails_only("T-CASE", |l| {
        l.title = "NORTHPEAK TRAIL WIRELESS HEADPHONES WITH 40-HOUR BATTERY, BLACK".into()
    });
    let mut l = good();
    l.title = "Northpeak USB LED HDMI Wireless Headphones with 40-Hour Battery".into();
    assert!(rule(&score(&l), "T-CASE").passed);
}

#[test]
fn t_rep_flags_a_word_used_three_times() {
    let r = fails_only("T-REP", |l| {
        l.title = "Northpeak Headphones Wireless Headphones for Kids Headphones 40h".into()
    });
    assert_eq!(rule(&r, "T-REP").evidence[0].text, "Headphones");
    let mut l = good();
    l.title = "Northpeak Headphones Wireless Headphones for Kids and Adults 40h".into();
    assert!(rule(&score(&l), "T-REP").passed);
}

#[test]
fn t_chr_flags_special_characters_and_emoji() {
    for c in ["!", "*", "~", "™", "🎧", "?"] {
        let r = fails_only("T-CHR", |l| {
            l.title = format!("Northpeak Trail Wireless Headphones{c} with 40-Hour Battery")
        });
        assert_eq!(rule(&r, "T-CHR").evidence[0].text, c);
    }
}

#[test]
fn f_fmt_flags_lowercase_html_and_placeholders() {
    fails_only("F-FMT", |l| {
        l.features[0] = "bluetooth 5.3 keeps a stable link".into()
    });
    fails_only("F-FMT", |l| {
        l.features[0] = "<b>Bluetooth</b> 5.3 keeps a stable link".into()
    });
    fails_only("F-FMT", |l| l.features[0] = "Range: TBD".into());
}

#[test]
fn f_len_flags_duplicates() {
    fails_only("F-LEN", |l| {
        l.features[1] = l.features[0]
            .to_uppercase()
            .to_lowercase()
            .replacen('b', "B", 1)
    });
}

#[test]
fn d_len_maximum_counts_characters_not_bytes() {
    // 4,000 characters (the maximum) in more than 4,000 bytes, then one character more.
    let mut description = prose(500);
    while description.chars().count() < 4000 {
        description.push_str(if description.chars().count().is_multiple_of(7) {
            " "
        } else {
            "é"
        });
    }
    description.truncate(
        description
            .char_indices()
            .nth(4000)
            .map_or(description.len(), |(i, _)| i),
    );
    assert!(description.len() > 4000 && description.chars().count() == 4000);
    let mut l = good();
    l.description = description.clone();
    assert!(rule(&score(&l), "D-LEN").passed);
    l.description = description + "é";
    let r = fails_only("D-LEN", |x| x.description = l.description.clone());
    assert_eq!(
        rule(&r, "D-LEN").evidence[0].reason,
        "4001 characters; at most 4000"
    );
}

#[test]
fn d_len_hard_fails_a_sentence_written_twice() {
    let again = "The cushions stay cool on warm afternoons.";
    let r = fails_only("D-LEN", |l| {
        l.description = format!(
            "<p>{again} {}.</p><p>{}</p>",
            prose(160),
            again.to_uppercase()
        )
    });
    assert!(r.hard_failed && r.score == 59 && !r.passed);
    let ev = &rule(&r, "D-LEN").evidence[0];
    assert_eq!(ev.text, again.to_uppercase().trim_end_matches('.'));
    assert!(ev.reason.contains("twice"), "{}", ev.reason);
    // A short phrase may come back, and so may a sentence with one word changed.
    let mut l = good();
    l.description = format!("<p>Easy to clean. {}. Easy to clean.</p>", prose(160));
    assert!(rule(&score(&l), "D-LEN").passed);
    l.description = format!(
        "<p>{again} {}. The cushions stay cool on hot afternoons.</p>",
        prose(160)
    );
    assert!(rule(&score(&l), "D-LEN").passed);
}

#[test]
fn d_html_allows_basic_tags_only() {
    fails_only("D-HTML", |l| {
        l.description = format!("<p>{}</p><script>x()</script>", prose(160))
    });
    fails_only("D-HTML", |l| {
        l.description = format!("<div>{}</div>", prose(160))
    });
    fails_only("D-HTML", |l| {
        l.description = format!("<p onclick=\"x()\">{}</p>", prose(160))
    });
    let mut l = good();
    l.description = format!("<p><b>Bold</b> {}</p><ul><li>One</li></ul><br>", prose(160));
    assert!(rule(&score(&l), "D-HTML").passed);
}

#[test]
fn x_promo_is_a_hard_fail_on_word_boundaries() {
    let r = fails_only("X-PROMO", |l| {
        l.description = format!("{} a top rated pick", prose(160))
    });
    assert!(r.hard_failed);
    assert_eq!(r.score, 59);
    assert_eq!(rule(&r, "X-PROMO").evidence[0].text, "top rated");
    let mut l = good();
    l.description = format!("{} sold wholesale to schools", prose(160));
    assert!(rule(&score(&l), "X-PROMO").passed);
}

#[test]
fn x_contact_finds_urls_emails_phones_addresses() {
    for bad in [
        "visit www.northpeak.example",
        "see northpeak.com for more",
        "write to help@northpeak.io",
        "call 555-123-4567 today",
        "call (555) 123-4567",
        "at 12 Maple Grove Street",
        "from 12 Maple Grove Street",
        "at 42 Elm St",
        "visit 1600 Harbor Point Drive",
        "or 1600 Harbor Point Drive, Springfield",
        "our office at 7 Main Road",
    ] {
        let r = fails_only("X-CONTACT", |l| {
            l.description = format!("{} {bad}", prose(160))
        });
        assert!(r.hard_failed, "{bad}");
    }
    let mut l = good();
    l.description = format!("{} rated for 100-240V and 3.5 mm jacks", prose(160));
    assert!(rule(&score(&l), "X-CONTACT").passed);
}

#[test]
fn x_contact_takes_no_product_text_for_an_address() {
    for fine in [
        "with a 2 TB Hard Drive",
        "pairs with a 2 TB hard drive",
        "for 4 Wheel Drive trucks",
        "a 10 Watt Power Drive",
        "the 3 Piece Bedroom Suite",
        "a 12 Speed Road bike",
        "a USB 3 Flash Drive",
        "supports 2 Hard Drive bays",
        "the 1 Pro Suite of tools",
    ] {
        let mut l = good();
        l.description = format!("{} {fine}", prose(160));
        let r = score(&l);
        assert!(
            rule(&r, "X-CONTACT").passed,
            "{fine}: {:?}",
            rule(&r, "X-CONTACT")
        );
    }
}

#[test]
fn x_contact_evidence_ends_with_the_address() {
    let r = fails_only("X-CONTACT", |l| {
        l.description = format!("{} Write to help@northpeak.example.com.", prose(160))
    });
    assert_eq!(
        rule(&r, "X-CONTACT").evidence[0].text,
        "help@northpeak.example.com"
    );
}

#[test]
fn x_commerce_finds_prices_shipping_and_years() {
    for bad in [
        "now $29.99",
        "with free shipping",
        "in stock today",
        "the 2024 edition",
        "save 20% off",
    ] {
        fails_only("X-COMMERCE", |l| {
            l.description = format!("{} {bad}", prose(160))
        });
    }
    let mut l = good();
    l.description = format!("{} with a 2000 mAh cell", prose(160));
    assert!(rule(&score(&l), "X-COMMERCE").passed);
}

#[test]
fn x_commerce_allows_fitment_years_in_automotive() {
    let mut l = good();
    l.description = format!("{} fits the 2015 model", prose(160));
    let mut p = product();
    p.category = "Automotive > Parts".into();
    assert!(rule(&Rubric::default().score(&l, Some(&p)), "X-COMMERCE").passed);
}

#[test]
fn x_retail_flags_retailers_unless_in_the_product_name() {
    fails_only("X-RETAIL", |l| {
        l.description = format!("{} as sold on Amazon", prose(160))
    });
    let mut l = good();
    l.description = format!("{} from the Costco line", prose(160));
    let mut p = product();
    p.product_name = "Costco Kirkland Headphones".into();
    let r = Rubric::default().score(&l, Some(&p));
    assert!(rule(&r, "X-RETAIL").passed);
}

#[test]
fn x_claims_flags_unverifiable_claims() {
    for bad in [
        "100% guaranteed",
        "FDA approved",
        "eco-friendly",
        "made in the USA",
        "antibacterial",
    ] {
        fails_only("X-CLAIMS", |l| {
            l.description = format!("{} {bad}", prose(160))
        });
    }
}

#[test]
fn x_lang_flags_testimonials_and_non_english() {
    fails_only("X-LANG", |l| {
        l.description = format!("{} customers say it changed their commute", prose(160))
    });
    let mut l = good();
    l.description = "这款耳机适合长途旅行使用 ".repeat(40);
    let r = score(&l);
    assert!(!rule(&r, "X-LANG").passed);
}

#[test]
fn reasons_name_rule_field_and_span() {
    let mut l = good();
    l.description = format!("{} hot sale", prose(160));
    let reasons = score(&l).reasons();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("X-PROMO") && r.contains("description") && r.contains("hot sale")),
        "{reasons:?}"
    );
}
