//! Unit tests of the reply-tone scorer, and its evaluation on the labelled
//! reply set `tests/fixtures/empathy/replies.csv` (238 replies written and
//! labelled by hand for attune, before the rules were tuned; see
//! `tests/fixtures/empathy/README.md`).

use super::*;

fn scorer() -> ToneScorer {
    ToneScorer::builtin().expect("the shipped tone rules parse")
}

fn fired(s: &ToneScorer, t: &Tone) -> Vec<String> {
    s.rule_names()
        .iter()
        .enumerate()
        .filter(|(i, _)| t.fired & (1 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

#[test]
fn words_expand_contractions_and_mark_clauses() {
    let w = words("I've refunded it, but we can't do more. That's why! It’s the customer's card");
    assert_eq!(
        w.words,
        [
            "i", "have", "refunded", "it", "but", "we", "can", "not", "do", "more", "that", "is",
            "why", "it", "is", "the", "customer", "card"
        ]
    );
    // "," then "but" (which opens its clause) then "." then "!".
    assert_eq!(w.clause[3], 0);
    assert_eq!(w.clause[4], 2);
    assert_eq!(w.clause[5], 2);
    assert!(w.clause[10] > w.clause[9]);
}

#[test]
fn each_rule_fires_on_its_own_cue() {
    let s = scorer();
    let complaint = ReplyContext {
        message: Some("My croissant was stale and the coffee cold"),
        complaint: Some(true),
    };
    // (reply, rule that must fire)
    let cases = [
        ("I understand how annoying this is.", "acknowledge"),
        ("We apologise for the mix-up.", "apology"),
        ("It happened because the oven failed.", "explain"),
        ("I've refunded your order.", "next_step"),
        (
            "The stale croissant and the cold coffee are not right.",
            "customer_words",
        ),
        ("Thank you for telling us.", "courtesy"),
        ("Have a lovely day", "courtesy"),
        ("Glad it worked out :)", "courtesy"),
        (
            "Refunds are processed as per our terms and conditions.",
            "cold",
        ),
        ("No.", "curt"),
        ("You should have checked the bag.", "blame"),
    ];
    for (reply, rule) in cases {
        let t = s.score(reply, &complaint);
        assert!(
            fired(&s, &t).iter().any(|r| r == rule),
            "{reply:?} should fire {rule}, fired {:?}",
            fired(&s, &t)
        );
    }
}

#[test]
fn negation_excepts_and_warranted_apologies() {
    let s = scorer();
    let complaint = ReplyContext {
        message: None,
        complaint: Some(true),
    };
    let question = ReplyContext {
        message: None,
        complaint: Some(false),
    };
    let has = |reply: &str, ctx: &ReplyContext, rule: &str| {
        fired(&s, &s.score(reply, ctx)).iter().any(|r| r == rule)
    };
    assert!(!has("We are not sorry about this.", &complaint, "apology"));
    assert!(!has(
        "We will not be refunding this.",
        &complaint,
        "next_step"
    ));
    assert!(has("We will not be refunding this.", &complaint, "cold"));
    assert!(!has(
        "We're sorry if you felt offended.",
        &complaint,
        "apology"
    ));
    assert!(has(
        "We're sorry if you felt offended.",
        &complaint,
        "blame"
    ));
    assert!(!has("Sorry for any inconvenience.", &complaint, "apology"));
    assert!(has("No problem, we'll remake it.", &complaint, "courtesy"));
    // Apologising to a question earns nothing and costs nothing.
    let q = s.score("Sorry, we close at 6.", &question);
    assert!(!fired(&s, &q).iter().any(|r| r == "apology"));
    assert_eq!(q.score, 50.0);
    // Without the customer's message the overlap rule cannot fire.
    assert!(!has(
        "stale croissant cold coffee",
        &complaint,
        "customer_words"
    ));
}

#[test]
fn scores_are_base_plus_points_clamped() {
    let s = scorer();
    let ctx = ReplyContext {
        message: None,
        complaint: Some(true),
    };
    // Nothing fires: the base.
    assert_eq!(s.score("Your order number is 4471.", &ctx).score, 50.0);
    // apology 15 + next_step 15 = 80.
    let t = s.score("Sorry, I've refunded it.", &ctx);
    assert_eq!(t.score, 80.0, "{:?}", fired(&s, &t));
    assert_eq!(t.label, ToneLabel::Warm);
    // cold -20 + blame -30 = 0.
    let t = s.score(
        "As stated in our terms, you should have reported this at the counter.",
        &ctx,
    );
    assert_eq!(t.score, 0.0);
    assert_eq!(t.label, ToneLabel::Cold);
    // Clamped at 100.
    let t = s.score(
        "Thank you, I understand how frustrating that is and I'm so sorry! It happened because the oven broke; I've refunded you.",
        &ctx,
    );
    assert_eq!(t.score, 100.0);
}

/// The "customer's words" rule where it cannot be judged: its points ×
/// the rate it fires at elsewhere, so the same reply reads the same to a
/// customer writing in German as, on average, to one writing in English.
#[test]
fn an_unjudged_customer_words_rule_is_credited_its_expected_points() {
    let s = scorer();
    let echo = s.echo_rule().expect("the lexicon has an overlap rule");
    let points = s
        .rule_docs()
        .into_iter()
        .find(|(n, _, _)| *n == "customer_words")
        .map(|(_, p, _)| f64::from(p))
        .expect("customer_words");
    assert_eq!(s.rule_names()[echo], "customer_words");
    let reply = "Your order number is 4471.";
    let judged = s.score(
        reply,
        &ReplyContext {
            message: Some("what is my order number"),
            complaint: Some(false),
        },
    );
    assert_eq!(judged.score, 50.0 + points);
    assert_eq!(judged.unjudged, 0);
    assert_ne!(judged.fired & (1 << echo), 0);
    assert!(
        s.impute_echo(&judged, 0.9).is_none(),
        "judged: nothing to impute"
    );
    let unjudged = s.score(
        reply,
        &ReplyContext {
            message: None,
            complaint: Some(false),
        },
    );
    assert_eq!(unjudged.score, 50.0);
    assert_eq!(unjudged.unjudged, 1 << echo);
    let t = s.impute_echo(&unjudged, 0.25).expect("unjudged");
    assert_eq!(t.score, 50.0 + 0.25 * points);
    assert_eq!(t.fired & (1 << echo), 0, "imputed points are not a firing");
    // imputed on the points before the clamp, and clamped again
    let warm = "Thank you, I understand how frustrating that is and I'm so sorry! It happened because the oven broke; I've refunded you.";
    let t = s.score(
        warm,
        &ReplyContext {
            message: None,
            complaint: Some(true),
        },
    );
    assert!(t.raw > 100.0 && t.score == 100.0);
    assert_eq!(s.impute_echo(&t, 1.0).expect("unjudged").score, 100.0);
}

#[test]
fn other_languages_and_empty_replies_are_not_scored() {
    let s = scorer();
    let ctx = ReplyContext::default();
    assert_eq!(s.score_reply(None, &ctx), Err(Unscored::NoText));
    assert_eq!(s.score_reply(Some("  "), &ctx), Err(Unscored::NoText));
    assert_eq!(
        s.score_reply(
            Some("Lo sentimos mucho, hemos devuelto el importe a su tarjeta y el pedido llegará mañana por la mañana."),
            &ctx
        ),
        Err(Unscored::UnsupportedLanguage)
    );
    assert_eq!(
        s.score_reply(
            Some("Es tut uns sehr leid, wir haben Ihnen den Betrag erstattet und schicken die Bestellung morgen früh."),
            &ctx
        ),
        Err(Unscored::UnsupportedLanguage)
    );
    assert!(
        s.score_reply(Some("Sorry about that, I've refunded your order."), &ctx)
            .is_ok()
    );
    // The cheap English check never claims Spanish or German text.
    assert!(looks_english(
        "We're so sorry, we have refunded the amount to your card."
    ));
    assert!(!looks_english(
        "Lo sentimos, hemos devuelto el importe a su tarjeta y el pedido llega mañana."
    ));
    assert!(!looks_english(
        "Es tut uns leid, wir haben den Betrag erstattet und die Bestellung kommt morgen."
    ));
}

#[test]
fn bad_rule_files_are_refused() {
    let ok = "base = 50\nwarm_threshold = 65\ncold_threshold = 40\nnegators = []\n[[rule]]\nname = \"a\"\npoints = 5\ndoc = \"d\"\ncues = [\"x\"]\n";
    assert!(ToneScorer::parse(ok).is_ok());
    let cases = [
        ok.replace("cues = [\"x\"]", "cues = []"),
        ok.replace("warm_threshold = 65", "warm_threshold = 30"),
        ok.to_string() + "[[rule]]\nname = \"a\"\npoints = 1\ndoc = \"d\"\ncues = [\"y\"]\n",
        ok.replace("cues = [\"x\"]", "cues = [\"x\"]\nkind = \"magic\""),
        ok.replace("cues = [\"x\"]", "cues = [\" \"]"),
        ok.replace("doc = \"d\"", "doc = \"d\"\ncolour = 1"),
    ];
    for text in cases {
        assert!(ToneScorer::parse(&text).is_err(), "{text}");
    }
}

/// One labelled reply of the evaluation set.
#[derive(Debug, Deserialize)]
struct Labelled {
    id: u32,
    complaint: bool,
    message: String,
    reply: String,
    label: String,
    covers: String,
}

fn labelled() -> Vec<Labelled> {
    let text = include_str!("../../../tests/fixtures/empathy/replies.csv");
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<std::result::Result<Vec<Labelled>, _>>()
        .expect("replies.csv parses")
}

/// Accuracy and macro-F1 (mean over warm, neutral, cold of per-class F1).
fn accuracy_macro_f1(pairs: &[(ToneLabel, ToneLabel)]) -> (f64, f64) {
    let correct = pairs.iter().filter(|(t, p)| t == p).count();
    let mut f1 = 0.0;
    for class in [ToneLabel::Cold, ToneLabel::Neutral, ToneLabel::Warm] {
        let tp = pairs
            .iter()
            .filter(|(t, p)| *t == class && *p == class)
            .count() as f64;
        let fp = pairs
            .iter()
            .filter(|(t, p)| *t != class && *p == class)
            .count() as f64;
        let fn_ = pairs
            .iter()
            .filter(|(t, p)| *t == class && *p != class)
            .count() as f64;
        let denom = 2.0 * tp + fp + fn_;
        f1 += if denom > 0.0 { 2.0 * tp / denom } else { 0.0 };
    }
    (correct as f64 / pairs.len() as f64, f1 / 3.0)
}

#[test]
fn macro_f1_matches_a_hand_computation() {
    use ToneLabel::*;
    // truth/pred: warm/warm, warm/neutral, cold/cold, neutral/neutral, neutral/cold
    // warm: tp1 fp0 fn1 -> 2/3; cold: tp1 fp1 fn0 -> 2/3; neutral: tp1 fp1 fn1 -> 1/2
    let pairs = [
        (Warm, Warm),
        (Warm, Neutral),
        (Cold, Cold),
        (Neutral, Neutral),
        (Neutral, Cold),
    ];
    let (acc, f1) = accuracy_macro_f1(&pairs);
    assert!((acc - 0.6).abs() < 1e-12);
    assert!((f1 - (2.0 / 3.0 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
}

/// The quality of the tone scorer on the hand-labelled set. Odd ids were used
/// to tune the rules, even ids are held out. Run with `-- --nocapture` to see
/// the figures the README quotes.
#[test]
fn eval_on_labelled_replies() {
    let s = scorer();
    let set = labelled();
    assert!(set.len() >= 200, "the eval set has {} replies", set.len());
    let mut all = Vec::new();
    let mut held_out = Vec::new();
    let mut rule_hits: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
    for r in &set {
        let truth = ToneLabel::parse(&r.label).expect("label is warm, neutral or cold");
        let ctx = ReplyContext {
            message: (!r.message.is_empty()).then_some(r.message.as_str()),
            complaint: Some(r.complaint),
        };
        let tone = s.score(&r.reply, &ctx);
        if tone.label != truth {
            println!(
                "miss {:>3} {:<7} scored {:>3} {:<7} {:?} {:?}",
                r.id,
                r.label,
                tone.score,
                tone.label.as_str(),
                fired(&s, &tone),
                r.reply
            );
        }
        all.push((truth, tone.label));
        if r.id % 2 == 0 {
            held_out.push((truth, tone.label));
        }
        let got = fired(&s, &tone);
        for rule in r
            .covers
            .split(';')
            .filter(|c| *c != "none" && *c != "negation")
        {
            let e = rule_hits.entry(rule.to_string()).or_default();
            e.0 += 1;
            e.1 += u32::from(got.iter().any(|g| g == rule));
        }
    }
    let (acc, f1) = accuracy_macro_f1(&all);
    let (acc_h, f1_h) = accuracy_macro_f1(&held_out);
    println!(
        "tone eval: {} replies: accuracy {acc:.3}, macro-F1 {f1:.3}",
        all.len()
    );
    println!(
        "held-out (even ids): {} replies: accuracy {acc_h:.3}, macro-F1 {f1_h:.3}",
        held_out.len()
    );
    for (rule, (n, hit)) in &rule_hits {
        println!(
            "rule {rule:<15} annotated {n:>3}, fired on {hit:>3} ({:.2})",
            f64::from(*hit) / f64::from(*n)
        );
    }
    // Every rule is exercised by the set.
    for rule in s.rule_names() {
        if rule == "curt" {
            continue;
        }
        let (n, _) = rule_hits.get(rule).copied().unwrap_or_default();
        assert!(n >= 10, "rule {rule} is annotated on only {n} replies");
    }
    // The levels reached when the rules were last tuned (0.929 / 0.924 on all,
    // 0.916 / 0.911 held out), less a small margin: a rule change that costs
    // more than two or three replies fails here.
    assert!(
        acc >= 0.91 && f1 >= 0.90,
        "accuracy {acc:.3}, macro-F1 {f1:.3}"
    );
    assert!(
        acc_h >= 0.89 && f1_h >= 0.89,
        "held out: accuracy {acc_h:.3}, macro-F1 {f1_h:.3}"
    );
    // Per-rule recall on the replies annotated with the rule, at the levels reached.
    let floor = [
        ("acknowledge", 0.80),
        ("apology", 0.85),
        ("blame", 0.50),
        ("cold", 0.75),
        ("courtesy", 0.85),
        ("customer_words", 0.75),
        ("explain", 0.35),
        ("next_step", 0.80),
    ];
    for (rule, min) in floor {
        let (n, hit) = rule_hits[rule];
        let recall = f64::from(hit) / f64::from(n);
        assert!(recall >= min, "rule {rule}: recall {recall:.2} < {min}");
    }
}

#[test]
fn the_reply_memo_answers_as_scoring_each_reply_does() {
    let s = scorer();
    let long_spanish = "Hola, muchas gracias por escribirnos y por su paciencia. ".repeat(12);
    let long_english =
        "We are so sorry about the late order, thank you for your patience. ".repeat(10);
    let replies = [
        "Thank you so much for telling us, we are sorry and we will fix it for you.",
        "Muchas gracias por su mensaje, lamentamos mucho lo ocurrido con su pedido.",
        "Vielen Dank für Ihre Nachricht, es tut uns sehr leid, wir kümmern uns darum.",
        "Merci beaucoup pour votre message, nous sommes désolés pour ce retard.",
        "Per our policy, refunds are not possible. You should have read the terms.",
        "ok",
        "  ",
        long_spanish.as_str(),
        long_english.as_str(),
    ];
    let contexts = [
        ReplyContext::default(),
        ReplyContext {
            message: Some("My order was late and the croissants were cold"),
            complaint: Some(true),
        },
        ReplyContext {
            message: Some("Where is my order? It is late."),
            complaint: Some(false),
        },
    ];
    // The definition, without any memo: the checks in order, then every rule.
    let direct = |reply: &str, ctx: &ReplyContext| {
        let text = reply.trim();
        if !text.chars().any(char::is_alphanumeric) {
            Err(Unscored::NoText)
        } else if !looks_english(text)
            && whatlang::detect(text)
                .is_some_and(|i| i.lang() != whatlang::Lang::Eng && i.is_reliable())
        {
            Err(Unscored::UnsupportedLanguage)
        } else {
            Ok(s.score(text, ctx))
        }
    };
    // twice, interleaved with the contexts: later answers come from the memo
    for _ in 0..2 {
        for r in replies {
            for ctx in &contexts {
                assert_eq!(s.score_reply(Some(r), ctx), direct(r, ctx), "{r}");
            }
        }
    }
    assert_eq!(
        s.score_reply(None, &contexts[0]),
        Err(Unscored::NoText),
        "a missing reply"
    );
    assert!(
        s.score_reply(Some(&long_spanish), &contexts[0]).is_err(),
        "past the memo's key limit too"
    );
    // A scorer with other rules on the same thread gets its own answers.
    let flat = ToneScorer::parse(
        "base = 50\nwarm_threshold = 60\ncold_threshold = 40\nnegators = []\n\n\
         [[rule]]\nname = \"thanks\"\npoints = 30\ndoc = \"d\"\ncues = [\"thank*\"]\n",
    )
    .expect("a one-rule file");
    let r = replies[0];
    assert_eq!(
        s.score_reply(Some(r), &contexts[0]),
        direct(r, &contexts[0])
    );
    assert_eq!(
        flat.score_reply(Some(r), &contexts[0]).map(|t| t.score),
        Ok(80.0)
    );
    assert_eq!(
        s.score_reply(Some(r), &contexts[0]),
        direct(r, &contexts[0])
    );
}

#[test]
fn shared_stems_count_the_intersection_of_content_stems() {
    let stop: BTreeSet<String> = ["the", "and", "was"]
        .iter()
        .map(|w| w.to_string())
        .collect();
    let ours = content_stems(
        "The croissants were cold and the order was charged twice",
        &stop,
    );
    for text in [
        "my croissant was COLD, cold and charged",
        "charging the orders: 2024 2024",
        "nothing in common",
        "",
    ] {
        let expected = content_stems(text, &stop).intersection(&ours).count();
        assert_eq!(shared_stems(text, &stop, &ours), expected, "{text}");
    }
    assert_eq!(shared_stems("cold cold croissants", &stop, &ours), 2);
}

/// Rules with two overlap rules of their own stopwords and thresholds (one
/// for complaints only) and a cue rule between them.
const TWO_OVERLAPS: &str = r#"
base = 50
warm_threshold = 70
cold_threshold = 45
negators = ["not"]

[[rule]]
name = "any_word"
points = 10
kind = "overlap"
min_shared = 1
doc = "repeats one of the customer's words"
stopwords = []

[[rule]]
name = "sorry"
points = 10
doc = "apologises"
cues = ["sorry"]

[[rule]]
name = "two_words"
points = 5
kind = "overlap"
applies = "complaint"
min_shared = 2
doc = "repeats two of the customer's words, some left out"
stopwords = ["the", "cold", "my", "order"]
"#;

/// Random text for replies and messages: English function words (most
/// replies read as English), content words in several forms (case,
/// suffixes the stemmer strips, straight and curly apostrophes,
/// contractions, possessives), numbers, other scripts and punctuation.
fn random_text(rng: &mut rand_xoshiro::Xoshiro256PlusPlus) -> String {
    use rand::Rng;
    const WORDS: &str = "the and you your we it is for our to my was sorry Sorry croissant \
        croissants CROISSANTS cold colder coffee charged charge charging twice order orders late \
        refunded it's can't we’re customer's delivery deliveries 12 2024 Straße naïve 🙂 !!";
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let n = rng.random_range(0..14);
    let mut text = String::new();
    for k in 0..n {
        if k > 0 {
            text.push_str([" ", " ", ", ", ". ", "! "][rng.random_range(0..5)]);
        }
        text.push_str(words[rng.random_range(0..words.len())]);
    }
    text
}

/// [`stem`] the way it was, on a copy of the word: the reference for the
/// slice it returns now.
fn stem_of_a_copy(word: &str) -> String {
    let mut w = word.to_string();
    for suffix in ["ing", "ed", "es", "s"] {
        if w.len() > suffix.len() + 2 && w.ends_with(suffix) {
            w.truncate(w.len() - suffix.len());
            break;
        }
    }
    if w.len() > 3 && w.ends_with('e') {
        w.pop();
    }
    w
}

/// Random text for the word walk: words in several cases and scripts
/// (a final sigma, a dotted capital I that lower-cases to two characters),
/// contractions with straight and curly apostrophes, lone and doubled
/// apostrophes, digits, punctuation and spaces of several kinds.
fn random_words(rng: &mut rand_xoshiro::Xoshiro256PlusPlus) -> String {
    use rand::Rng;
    // `|` between the pieces: some of them are spaces
    const PIECES: &str = "The|croissants|CHARGED|it's|It’s|can't|Won’t|let's|'tis|''|'|\
        customer's|we'd|ΟΔΟΣ|İstanbul|Straße|12|2024s|naïve|é|but| |  |, |. |!|\t|\n|🙂|-";
    let pieces: Vec<&str> = PIECES.split('|').collect();
    let n = rng.random_range(0..16);
    (0..n)
        .map(|_| pieces[rng.random_range(0..pieces.len())])
        .collect()
}

/// Differential: the words [`each_word`] hands out, against those of
/// [`words`] (a `String` per word), on random text.
#[test]
fn each_word_walks_the_words_of_words() {
    use rand::SeedableRng;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(37);
    let mut seen = 0;
    for _ in 0..5000 {
        let text = random_words(&mut rng);
        let mut got = Vec::new();
        each_word(&text, |w| got.push(w.to_string()));
        let want = words(&text).words;
        seen += want.len();
        assert_eq!(got, want, "{text:?}");
    }
    assert!(seen > 10_000, "{seen}");
}

/// Differential: [`stem`] against the copy it was made on before, on the
/// words of random text and on short and suffixed words.
#[test]
fn a_stem_is_the_beginning_a_copy_was_cut_to() {
    use rand::SeedableRng;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(41);
    let mut all: Vec<String> = "s es ed ing bes bees eses sings ringed tree free charges \
        charged charging croissants naïvees éééing cafés caféé"
        .split_whitespace()
        .chain([""])
        .map(str::to_string)
        .collect();
    for _ in 0..2000 {
        all.extend(words(&random_words(&mut rng)).words);
    }
    for w in &all {
        assert_eq!(stem(w), stem_of_a_copy(w), "{w:?}");
    }
}

/// Differential: replies and messages read by one reader, stems numbered
/// (`ToneReader`), against the texts scored as they are (`score_reply`:
/// `shared_stems` of the message's text, sets of strings), on random
/// replies and messages read in mixed order by one reader (its numbers
/// growing as it goes), with the shipped rules and with two overlap rules
/// of their own; without a message, and on replies without words or in
/// another language.
#[test]
fn a_reader_scores_as_the_texts() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(43);
    let two = ToneScorer::parse(TWO_OVERLAPS).expect("the test rules parse");
    for s in [scorer(), two] {
        let overlap: u32 = s
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.kind, RuleKind::Overlap { .. }))
            .map(|(i, _)| 1 << i)
            .sum();
        let mut reader = s.reader();
        let mut replies: Vec<(String, ReadReply)> = [
            "",
            "  ",
            "🙂 !!",
            "Lo sentimos mucho, hemos devuelto el importe a su tarjeta y el pedido llegará mañana por la mañana.",
        ]
        .into_iter()
        .map(|r| (r.to_string(), reader.reply(Some(r))))
        .collect();
        let no_reply = reader.reply(None);
        let mut messages: Vec<(String, NumberedMessage)> = Vec::new();
        let (mut fired, mut not_fired) = (0, 0);
        for _ in 0..3000 {
            if replies.len() < 60 || rng.random_range(0..4) == 0 {
                let r = random_text(&mut rng);
                let read = reader.reply(Some(r.as_str()));
                replies.push((r, read));
            }
            if messages.len() < 60 || rng.random_range(0..4) == 0 {
                let m = random_text(&mut rng);
                let read = reader.message(&m);
                messages.push((m, read));
            }
            let (reply, read_reply) = &replies[rng.random_range(0..replies.len())];
            let (message, read_message) = &messages[rng.random_range(0..messages.len())];
            let complaint = [None, Some(true), Some(false)][rng.random_range(0..3)];
            let by_text = s.score_reply(
                Some(reply.as_str()),
                &ReplyContext {
                    message: Some(message.as_str()),
                    complaint,
                },
            );
            let got = reader.score(read_reply, Some(read_message), complaint);
            assert_eq!(got, by_text, "{reply:?} to {message:?}");
            let without = ReplyContext {
                message: None,
                complaint,
            };
            assert_eq!(
                reader.score(read_reply, None, complaint),
                s.score_reply(Some(reply.as_str()), &without),
                "{reply:?}"
            );
            assert_eq!(
                reader.score(&no_reply, Some(read_message), complaint),
                Err(Unscored::NoText)
            );
            if let Ok(t) = got {
                if t.fired & overlap != 0 {
                    fired += 1;
                } else {
                    not_fired += 1;
                }
            }
        }
        assert!(fired > 100 && not_fired > 100, "{fired} {not_fired}");
        assert_eq!(replies[0].1, reader.reply(Some("")));
        assert!(reader.stems() > 10, "{}", reader.stems());
    }
}
