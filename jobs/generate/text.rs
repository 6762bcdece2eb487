//! Free text that reads like what customers and staff really write.
//!
//! Texts are built from templates × slots (pastries, drinks, staff, waits,
//! prices) in English, Spanish and German, then styled: intensified ("VERY
//! rude", "!!"), negated ("not bad at all"), sarcastic ("oh great, another
//! 40 minute wait"), with emoticons or emoji. The tone always follows the
//! score it accompanies, so a sentiment scorer can be checked against it;
//! the language follows the customer, never the score.

use rand::Rng;

/// What a text should express.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Positive,
    Mixed,
    Neutral,
    Negative,
}

/// Personal data planted in free text for the redactor to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pii {
    Email,
    Phone,
    Card,
    Iban,
    Ip,
}

impl Pii {
    pub const ALL: [Pii; 5] = [Pii::Email, Pii::Phone, Pii::Card, Pii::Iban, Pii::Ip];

    pub fn code(self) -> &'static str {
        match self {
            Pii::Email => "email",
            Pii::Phone => "phone",
            Pii::Card => "card_number",
            Pii::Iban => "iban",
            Pii::Ip => "ip_address",
        }
    }
}

struct Noun {
    bare: &'static str,
    def: &'static str,
    fem: bool,
}

const fn n(bare: &'static str, def: &'static str, fem: bool) -> Noun {
    Noun { bare, def, fem }
}

/// The words of one language.
struct Lex {
    foods: &'static [Noun],
    drinks: &'static [Noun],
    staff: &'static [&'static str],
    /// Positive adjectives (masculine, feminine).
    good: &'static [(&'static str, &'static str)],
    /// Negative adjectives for food (masculine, feminine).
    bad: &'static [(&'static str, &'static str)],
    weekdays: &'static [&'static str],
    pos: &'static [&'static str],
    neg: &'static [&'static str],
    sarcastic: &'static [&'static str],
    neutral: &'static [&'static str],
    but: &'static [&'static str],
    although: &'static [&'static str],
    and: &'static [&'static str],
    hype: &'static [&'static str],
    fury: &'static [&'static str],
    review_titles_pos: &'static [&'static str],
    review_titles_neg: &'static [&'static str],
}

const EN: Lex = Lex {
    foods: &[
        n("croissant", "the croissant", false),
        n("almond croissant", "the almond croissant", false),
        n("pain au chocolat", "the pain au chocolat", false),
        n("cinnamon roll", "the cinnamon roll", false),
        n("sourdough", "the sourdough", false),
        n("rye loaf", "the rye loaf", false),
        n("baguette", "the baguette", false),
        n("carrot cake", "the carrot cake", false),
        n("cheesecake", "the cheesecake", false),
        n("brownie", "the brownie", false),
        n("blueberry muffin", "the blueberry muffin", false),
        n("banana bread", "the banana bread", false),
        n("scone", "the scone", false),
        n("lemon tart", "the lemon tart", false),
        n("focaccia", "the focaccia", false),
        n("sausage roll", "the sausage roll", false),
        n(
            "ham and cheese toastie",
            "the ham and cheese toastie",
            false,
        ),
        n("bagel", "the bagel", false),
    ],
    drinks: &[
        n("coffee", "the coffee", false),
        n("flat white", "the flat white", false),
        n("cappuccino", "the cappuccino", false),
        n("latte", "the latte", false),
        n("oat latte", "the oat latte", false),
        n("hot chocolate", "the hot chocolate", false),
        n("espresso", "the espresso", false),
        n("chai latte", "the chai latte", false),
        n("iced coffee", "the iced coffee", false),
        n("tea", "the tea", false),
    ],
    staff: &[
        "the barista",
        "the staff",
        "the girl at the counter",
        "the guy at the till",
        "the manager",
        "the new barista",
        "the woman who served me",
        "the lad on the coffee machine",
    ],
    good: &[
        ("amazing", ""),
        ("delicious", ""),
        ("so fresh", ""),
        ("perfect", ""),
        ("lovely", ""),
        ("incredible", ""),
        ("still warm", ""),
        ("spot on", ""),
        ("really good", ""),
    ],
    bad: &[
        ("stale", ""),
        ("dry", ""),
        ("burnt", ""),
        ("soggy", ""),
        ("rock hard", ""),
        ("clearly from yesterday", ""),
        ("raw in the middle", ""),
    ],
    weekdays: &[
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    pos: &[
        "{f} was {j}",
        "{d} was {j}",
        "{s} was so friendly",
        "{s} remembered my order",
        "{s} went out of their way to help",
        "best {F} in town",
        "friendly barista",
        "lovely atmosphere",
        "cosy place, great vibe",
        "quick service even on a busy {w}",
        "not bad at all",
        "couldn't be happier",
        "never disappointed",
        "great value for money",
        "my kids love {f}",
        "{f} is to die for",
        "always fresh, always friendly",
        "{s} made my day",
        "can't fault it",
        "perfect {D} every time",
        "absolutely loved it",
        "really good {F}",
        "worth every cent",
        "the {F} was not too sweet, just right",
        "not a single bad visit",
    ],
    neg: &[
        "{d} was cold",
        "cold {D} again",
        "waited forever",
        "waited {n} minutes for a {D}",
        "{s} was rude",
        "{s} was VERY rude",
        "{s} ignored me",
        "stale bread",
        "{f} was {k}",
        "checkout broken",
        "the app crashed at checkout",
        "card machine broken again",
        "my order was wrong",
        "they forgot my {F}",
        "not happy",
        "not worth the money",
        "never again",
        "too expensive for what you get",
        "{p} for a {D}? seriously",
        "the delivery was {n} minutes late",
        "tables were dirty",
        "no oat milk again",
        "found a hair in my {F}",
        "really disappointed",
        "queue out the door and only one person working",
        "not good enough",
        "the {F} was not fresh at all",
    ],
    sarcastic: &[
        "oh great, another {n} minute wait",
        "love paying {p} for a cold {D}",
        "thanks for the stale {F}, really made my day",
        "wow, amazing service... not",
        "brilliant, they forgot my order again",
        "five stars for the longest queue in town /s",
        "nothing says good morning like a burnt {F}",
        "sure, take your time, I only have a train to catch",
        "great job, third wrong order this month",
    ],
    neutral: &[
        "it was ok",
        "fine, nothing special",
        "average {F}",
        "same as always",
        "decent {D}",
        "service was alright",
        "ok i guess",
        "as expected",
        "a normal visit",
        "no complaints, no praise",
        "quick coffee, nothing to report",
        "it's a bakery",
        "{f} was fine",
        "neither good nor bad",
    ],
    but: &[" but ", ", but ", ". However, ", ", though "],
    although: &[", although ", ", even if ", ". Still, "],
    and: &[", ", " and ", ". ", ", also "],
    hype: &[
        "Absolutely loved it!! ",
        "WOW. ",
        "So so good. ",
        "Honestly the best. ",
    ],
    fury: &[
        "REALLY disappointed. ",
        "Unbelievable. ",
        "Honestly? ",
        "Ugh. ",
    ],
    review_titles_pos: &[
        "Hidden gem!",
        "Our new favourite spot.",
        "Best bakery around.",
        "Lovely little café.",
    ],
    review_titles_neg: &[
        "Avoid.",
        "What happened to this place?",
        "Disappointing.",
        "Not what it used to be.",
    ],
};

const ES: Lex = Lex {
    foods: &[
        n("cruasán", "el cruasán", false),
        n(
            "napolitana de chocolate",
            "la napolitana de chocolate",
            true,
        ),
        n("pan de masa madre", "el pan de masa madre", false),
        n("tarta de queso", "la tarta de queso", true),
        n("bizcocho", "el bizcocho", false),
        n("magdalena", "la magdalena", true),
        n("bocadillo", "el bocadillo", false),
        n("ensaimada", "la ensaimada", true),
        n("pan de centeno", "el pan de centeno", false),
        n("empanada", "la empanada", true),
    ],
    drinks: &[
        n("café", "el café", false),
        n("café con leche", "el café con leche", false),
        n("cortado", "el cortado", false),
        n("capuchino", "el capuchino", false),
        n("chocolate caliente", "el chocolate caliente", false),
        n("té", "el té", false),
    ],
    staff: &[
        "el camarero",
        "la camarera",
        "el chico de la caja",
        "la chica del mostrador",
        "el personal",
        "el encargado",
    ],
    good: &[
        ("buenísimo", "buenísima"),
        ("riquísimo", "riquísima"),
        ("delicioso", "deliciosa"),
        ("perfecto", "perfecta"),
        ("recién hecho", "recién hecha"),
        ("espectacular", "espectacular"),
    ],
    bad: &[
        ("seco", "seca"),
        ("duro", "dura"),
        ("quemado", "quemada"),
        ("rancio", "rancia"),
        ("crudo por dentro", "cruda por dentro"),
    ],
    weekdays: &[
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
    ],
    pos: &[
        "{f} estaba {j}",
        "{d} estaba {j}",
        "{s} fue muy amable",
        "muy buena atención",
        "el personal es encantador",
        "{f}, lo mejor del barrio",
        "nos encanta este sitio",
        "no está nada mal",
        "todo perfecto",
        "volveremos seguro",
        "relación calidad-precio genial",
        "siempre fresco y rico",
        "me encantó!!",
        "muy recomendable",
        "servicio rapidísimo incluso un {w}",
    ],
    neg: &[
        "{d} estaba frío",
        "el café estaba frío",
        "esperé muchísimo",
        "esperamos {n} minutos",
        "{s} fue muy borde",
        "{s} no nos hizo ni caso",
        "{f} estaba {k}",
        "el pan estaba duro",
        "no estoy contento",
        "nunca más",
        "el pedido llegó tarde",
        "la app no funciona",
        "demasiado caro",
        "me cobraron dos veces",
        "las mesas estaban sucias",
        "pésimo servicio",
        "MUY mal",
        "no vale lo que cuesta",
    ],
    sarcastic: &[
        "genial, otra vez {n} minutos de espera",
        "qué maravilla, el café frío otra vez",
        "perfecto, se olvidaron de mi pedido otra vez",
        "gracias por el pan duro, me alegrasteis el día",
    ],
    neutral: &[
        "normal, nada especial",
        "estuvo bien",
        "como siempre",
        "correcto",
        "ni bien ni mal",
        "{D} normalito",
        "lo de siempre",
    ],
    but: &[" pero ", ", pero ", ", eso sí, "],
    although: &[", aunque ", ". Aun así, "],
    and: &[", ", " y ", ". "],
    hype: &["¡Me encantó! ", "¡Increíble! ", "De diez. "],
    fury: &["MUY decepcionado. ", "Increíble... ", "Vaya tela. "],
    review_titles_pos: &["¡Un sitio genial!", "Nuestra panadería favorita."],
    review_titles_neg: &["No lo recomiendo.", "Qué decepción."],
};

const DE: Lex = Lex {
    foods: &[
        n("Croissant", "das Croissant", false),
        n("Franzbrötchen", "das Franzbrötchen", false),
        n("Sauerteigbrot", "das Sauerteigbrot", false),
        n("Käsekuchen", "der Käsekuchen", false),
        n("Brezel", "die Brezel", true),
        n("Zimtschnecke", "die Zimtschnecke", true),
        n("Apfelstrudel", "der Apfelstrudel", false),
        n("Laugenstange", "die Laugenstange", true),
        n("Mohnkuchen", "der Mohnkuchen", false),
        n("Roggenbrot", "das Roggenbrot", false),
    ],
    drinks: &[
        n("Kaffee", "der Kaffee", false),
        n("Cappuccino", "der Cappuccino", false),
        n("Milchkaffee", "der Milchkaffee", false),
        n("Latte", "der Latte", false),
        n("Hafer-Latte", "der Hafer-Latte", false),
        n("heiße Schokolade", "die heiße Schokolade", true),
        n("Tee", "der Tee", false),
    ],
    staff: &[
        "die Bedienung",
        "der Barista",
        "die Verkäuferin",
        "der Typ an der Kasse",
        "das Personal",
        "die Chefin",
    ],
    good: &[
        ("super lecker", "super lecker"),
        ("richtig gut", "richtig gut"),
        ("frisch", "frisch"),
        ("perfekt", "perfekt"),
        ("ein Traum", "ein Traum"),
    ],
    bad: &[
        ("alt", "alt"),
        ("trocken", "trocken"),
        ("verbrannt", "verbrannt"),
        ("pappig", "pappig"),
        ("steinhart", "steinhart"),
    ],
    weekdays: &[
        "Montag",
        "Dienstag",
        "Mittwoch",
        "Donnerstag",
        "Freitag",
        "Samstag",
        "Sonntag",
    ],
    pos: &[
        "sehr freundlich",
        "{f} war {j}",
        "{d} war {j}",
        "{s} war total nett",
        "bester Kaffee in der Gegend",
        "nicht schlecht",
        "immer wieder gerne",
        "tolle Atmosphäre",
        "schneller Service, sogar am {w}",
        "top Preis-Leistung",
        "absolut empfehlenswert!!",
        "die Kinder lieben {f}",
        "sehr freundlich und schnell",
    ],
    neg: &[
        "{d} war kalt",
        "ewig gewartet",
        "{n} Minuten gewartet",
        "{s} war sehr unfreundlich",
        "{s} war SEHR unhöflich",
        "{f} war {k}",
        "das Brot war alt",
        "nicht zufrieden",
        "nie wieder",
        "die Lieferung kam zu spät",
        "die App stürzt beim Bezahlen ab",
        "viel zu teuer",
        "Bestellung war falsch",
        "Tische waren dreckig",
        "gar nicht gut",
    ],
    sarcastic: &[
        "na toll, schon wieder {n} Minuten warten",
        "super, wieder kalter Kaffee",
        "danke für das alte Brot, echt klasse",
        "wow, toller Service... nicht",
    ],
    neutral: &[
        "ganz okay",
        "nichts Besonderes",
        "wie immer",
        "passt schon",
        "war in Ordnung",
        "geht so",
        "{d} war okay",
    ],
    but: &[", aber ", " aber ", ", allerdings "],
    although: &[", obwohl ", ". Trotzdem: "],
    and: &[", ", " und ", ". "],
    hype: &["Einfach super!! ", "Wow. ", "Top! "],
    fury: &["SEHR enttäuscht. ", "Unfassbar. ", "Echt jetzt? "],
    review_titles_pos: &["Tolle Bäckerei!", "Unser Lieblingscafé."],
    review_titles_neg: &["Leider enttäuschend.", "Nicht zu empfehlen."],
};

fn lex(lang: u8) -> &'static Lex {
    match lang {
        1 => &ES,
        2 => &DE,
        _ => &EN,
    }
}

const EMOJI_POS: &[&str] = &[":)", ":-)", ":D", "😊", "❤️", "👍", "🥐", "☕", "😍", "<3"];
const EMOJI_NEG: &[&str] = &[":(", ":-(", "😡", "👎", "😞", "🙄", "😤", ">:("];
const EMOJI_NEUTRAL: &[&str] = &[":|", "🤷", "😐"];
const EMOJI_MIXED: &[&str] = &[":/", "🤔", "😕"];

fn pick<R: Rng, T: Copy>(rng: &mut R, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

/// Expands `{f}` food (with article in es/de), `{F}` food (bare), `{d}`/`{D}`
/// drink, `{s}` staff, `{j}`/`{k}` a good/bad adjective agreeing with the
/// last noun, `{n}` minutes, `{m}` people, `{p}` a price, `{w}` a weekday.
fn fill<R: Rng>(rng: &mut R, lx: &Lex, tpl: &str, out: &mut String) {
    let mut fem = false;
    let mut rest = tpl;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let slot = rest.as_bytes().get(open + 1).copied().unwrap_or(b'}');
        rest = &rest[(open + 3).min(rest.len())..];
        match slot {
            b'f' | b'F' => {
                let noun = &lx.foods[rng.random_range(0..lx.foods.len())];
                fem = noun.fem;
                out.push_str(if slot == b'f' { noun.def } else { noun.bare });
            }
            b'd' | b'D' => {
                let noun = &lx.drinks[rng.random_range(0..lx.drinks.len())];
                fem = noun.fem;
                out.push_str(if slot == b'd' { noun.def } else { noun.bare });
            }
            b's' => out.push_str(pick(rng, lx.staff)),
            b'j' | b'k' => {
                let (m, f) = pick(rng, if slot == b'j' { lx.good } else { lx.bad });
                out.push_str(if fem && !f.is_empty() { f } else { m });
            }
            b'n' => {
                out.push_str(itoa::Buffer::new().format(rng.random_range(3..13u32) * 5));
            }
            b'm' => out.push_str(itoa::Buffer::new().format(rng.random_range(2..9u32))),
            b'p' => {
                let cents = rng.random_range(38..85u32) * 10;
                out.push('€');
                out.push_str(itoa::Buffer::new().format(cents / 100));
                out.push('.');
                out.push_str(itoa::Buffer::new().format(cents % 100 / 10));
                out.push('0');
            }
            b'w' => out.push_str(pick(rng, lx.weekdays)),
            _ => {}
        }
    }
    out.push_str(rest);
}

fn fill_pick<R: Rng>(rng: &mut R, lx: &Lex, templates: &[&str], out: &mut String) {
    let tpl = pick(rng, templates);
    fill(rng, lx, tpl, out);
}

fn capitalize_from(out: &mut String, at: usize) {
    if let Some(c) = out[at..].chars().next()
        && c.is_lowercase()
    {
        let upper: String = c.to_uppercase().collect();
        out.replace_range(at..at + c.len_utf8(), &upper);
    }
}

fn clause<R: Rng>(rng: &mut R, lx: &Lex, tone: Tone, out: &mut String) {
    let tpl = match tone {
        Tone::Positive => pick(rng, lx.pos),
        Tone::Negative if rng.random_bool(0.18) => pick(rng, lx.sarcastic),
        Tone::Negative => pick(rng, lx.neg),
        Tone::Neutral | Tone::Mixed => pick(rng, lx.neutral),
    };
    fill(rng, lx, tpl, out);
}

/// A short survey comment or review body in `lang` expressing `tone`.
pub fn comment<R: Rng>(rng: &mut R, lang: u8, tone: Tone, out: &mut String) {
    body(rng, lang, tone, 1, out);
}

fn body<R: Rng>(rng: &mut R, lang: u8, tone: Tone, min_clauses: u32, out: &mut String) {
    let lx = lex(lang);
    let start = out.len();
    let intense = match tone {
        Tone::Positive => rng.random_bool(0.15),
        Tone::Negative => rng.random_bool(0.2),
        _ => false,
    };
    let mut after_hype = None;
    if intense {
        out.push_str(pick(
            rng,
            if tone == Tone::Positive {
                lx.hype
            } else {
                lx.fury
            },
        ));
        after_hype = Some(out.len());
    }
    match tone {
        Tone::Mixed => {
            // Mixed feelings: one good and one bad thing, in either order.
            if rng.random_bool(0.6) {
                fill_pick(rng, lx, lx.pos, out);
                out.push_str(pick(rng, lx.but));
                fill_pick(rng, lx, lx.neg, out);
            } else {
                fill_pick(rng, lx, lx.neg, out);
                out.push_str(pick(rng, lx.although));
                fill_pick(rng, lx, lx.pos, out);
            }
        }
        _ => {
            let extra = match rng.random_range(0..10u8) {
                0..=5 => 0,
                6..=8 => 1,
                _ => 2,
            };
            let clauses = min_clauses.max(1) + extra;
            for i in 0..clauses {
                if i > 0 {
                    out.push_str(pick(rng, lx.and));
                }
                let at = out.len();
                clause(rng, lx, tone, out);
                if i > 0 && out[..at].ends_with(". ") {
                    capitalize_from(out, at);
                }
            }
        }
    }
    if rng.random_bool(0.7) {
        capitalize_from(out, start);
    }
    if let Some(at) = after_hype {
        capitalize_from(out, at); // the exclamation ended a sentence
    }
    let end = match tone {
        Tone::Positive => pick(rng, &["", ".", "!", "!!", "!"]),
        Tone::Negative => pick(rng, &["", ".", "!", "!!!", "...", "."]),
        _ => pick(rng, &["", ".", ".", "..."]),
    };
    if !out.ends_with('!') && !out.ends_with('?') {
        out.push_str(end);
    }
    if rng.random_bool(0.18) {
        out.push(' ');
        out.push_str(pick(
            rng,
            match tone {
                Tone::Positive => EMOJI_POS,
                Tone::Negative => EMOJI_NEG,
                Tone::Mixed => EMOJI_MIXED,
                Tone::Neutral => EMOJI_NEUTRAL,
            },
        ));
    }
}

/// Tone of a 1–5 star rating.
pub fn tone_of_stars<R: Rng>(rng: &mut R, stars: u8) -> Tone {
    match stars {
        5 => Tone::Positive,
        4 if rng.random_bool(0.75) => Tone::Positive,
        4 => Tone::Mixed,
        3 if rng.random_bool(0.6) => Tone::Mixed,
        3 => Tone::Neutral,
        _ => Tone::Negative,
    }
}

/// A public review: sometimes a title, then a few clauses.
pub fn review<R: Rng>(rng: &mut R, lang: u8, stars: u8, out: &mut String) {
    let lx = lex(lang);
    let tone = tone_of_stars(rng, stars);
    if rng.random_bool(0.3) {
        match tone {
            Tone::Positive => out.push_str(pick(rng, lx.review_titles_pos)),
            Tone::Negative => out.push_str(pick(rng, lx.review_titles_neg)),
            _ => {}
        }
        if !out.is_empty() {
            out.push(' ');
        }
    }
    body(rng, lang, tone, 2, out);
}

/// Ticket topics, in the contract's order.
pub const TOPICS: [&str; 6] = [
    "order_issue",
    "product_quality",
    "billing",
    "delivery",
    "allergy_info",
    "other",
];

const TICKET_EN: [&[&str]; 6] = [
    &[
        "my order was missing the {F}",
        "got someone else's order today",
        "the app says my order was collected but I never got it",
        "you gave me the wrong {D}",
        "I ordered {f} and got something else entirely",
    ],
    &[
        "the {F} I bought this morning was {k}",
        "found a hair in my {F}",
        "the {D} tasted burnt",
        "my {D} was cold by the time I sat down",
        "the {F} was mouldy on the bottom",
    ],
    &[
        "I was charged twice for my order",
        "still waiting for my refund after {n} days",
        "the price at the till was different from the app",
        "why was I charged {p} for a {D}?",
        "my loyalty discount was not applied",
    ],
    &[
        "the delivery arrived {n} minutes late and the {D} was cold",
        "the courier left my order at the wrong door",
        "my delivery never arrived",
        "half my delivery was missing",
    ],
    &[
        "does the {F} contain nuts? my son is allergic",
        "do you have gluten-free options?",
        "is there dairy in the {F}?",
        "are your vegan pastries made on the same surfaces as the others?",
        "which of your breads are sesame free?",
    ],
    &[
        "do you do catering for office events?",
        "can I reserve a table for {m} on Saturday?",
        "I think I left my scarf in the shop yesterday",
        "are you hiring baristas?",
        "will you be open on the public holiday?",
        "can I buy a gift card online?",
    ],
];

const TICKET_ES: [&[&str]; 6] = [
    &[
        "a mi pedido le faltaba {f}",
        "me dieron el pedido de otra persona",
        "la app dice que recogí el pedido pero no es verdad",
    ],
    &[
        "{f} que compré esta mañana estaba {k}",
        "encontré un pelo en la comida",
        "{d} sabía a quemado",
        "{d} estaba frío",
    ],
    &[
        "me cobraron dos veces",
        "sigo esperando el reembolso después de {n} días",
        "el precio en caja no coincide con la app",
        "no me aplicaron el descuento de la tarjeta",
    ],
    &[
        "el pedido llegó {n} minutos tarde y {d} estaba frío",
        "el repartidor dejó el pedido en la puerta equivocada",
        "el pedido nunca llegó",
    ],
    &[
        "¿{f} lleva frutos secos? mi hijo es alérgico",
        "¿tenéis opciones sin gluten?",
        "¿{f} lleva lactosa?",
    ],
    &[
        "¿hacéis catering para eventos de empresa?",
        "¿puedo reservar una mesa para {m} el sábado?",
        "creo que me dejé la bufanda ayer",
        "¿abrís el día festivo?",
    ],
];

const TICKET_DE: [&[&str]; 6] = [
    &[
        "in meiner Bestellung fehlte {f}",
        "ich habe die Bestellung von jemand anderem bekommen",
        "die App sagt, die Bestellung wurde abgeholt, stimmt aber nicht",
    ],
    &[
        "{f} von heute Morgen war {k}",
        "ich habe ein Haar im Essen gefunden",
        "{d} schmeckte verbrannt",
        "{d} war kalt",
    ],
    &[
        "mir wurde doppelt abgebucht",
        "ich warte seit {n} Tagen auf meine Erstattung",
        "der Preis an der Kasse war anders als in der App",
        "mein Treuerabatt wurde nicht abgezogen",
    ],
    &[
        "die Lieferung kam {n} Minuten zu spät und {d} war kalt",
        "der Fahrer hat die Bestellung vor der falschen Tür abgestellt",
        "meine Lieferung ist nie angekommen",
    ],
    &[
        "enthält {f} Nüsse? Mein Sohn ist allergisch",
        "habt ihr glutenfreie Sachen?",
        "enthält {f} Milch?",
    ],
    &[
        "macht ihr auch Catering für Firmenfeiern?",
        "kann ich für Samstag einen Tisch für {m} reservieren?",
        "ich habe gestern meinen Schal bei euch liegen lassen",
        "habt ihr am Feiertag offen?",
    ],
];

const UPSET_OPEN: [&[&str]; 3] = [
    &[
        "This is unacceptable. ",
        "Seriously?! ",
        "Not happy at all. ",
        "Third time this month: ",
        "Honestly, ",
        "",
        "",
    ],
    &[
        "Esto es inaceptable. ",
        "¿En serio? ",
        "Muy mal. ",
        "Ya es la tercera vez: ",
        "",
    ],
    &[
        "Das ist inakzeptabel. ",
        "Echt jetzt?! ",
        "Sehr ärgerlich. ",
        "Schon das dritte Mal: ",
        "",
    ],
];
const UPSET_CLOSE: [&[&str]; 3] = [
    &[
        " 😡",
        "!!!",
        ". Fix this.",
        ". VERY disappointed.",
        ". I want my money back.",
        ". Oh great, thanks a lot.",
        ".",
    ],
    &[
        " 😡",
        "!!!",
        ". Quiero mi dinero.",
        ". MUY decepcionado.",
        ".",
    ],
    &[
        " 😡",
        "!!!",
        ". SEHR enttäuscht.",
        ". Ich will mein Geld zurück.",
        ".",
    ],
];
const POLITE_OPEN: [&[&str]; 3] = [
    &["Hi, ", "Hello, ", "Hi there! ", "Good morning, ", ""],
    &["Hola, ", "Buenos días, ", ""],
    &["Hallo, ", "Guten Tag, ", "Hi, ", ""],
];
const POLITE_CLOSE: [&[&str]; 3] = [
    &[
        ". Thanks!",
        ". Thank you :)",
        ". Cheers",
        ".",
        ". Many thanks.",
    ],
    &[". ¡Gracias!", ". Un saludo.", ". Gracias :)", "."],
    &[". Danke!", ". Viele Grüße", ". Danke :)", "."],
];

/// The customer's words when opening a ticket about `topic`.
pub fn ticket_message<R: Rng>(rng: &mut R, lang: u8, topic: u8, upset: bool, out: &mut String) {
    let l = usize::from(lang.min(2));
    let lx = lex(lang);
    let bank = match lang {
        1 => TICKET_ES,
        2 => TICKET_DE,
        _ => TICKET_EN,
    };
    let start = out.len();
    out.push_str(pick(
        rng,
        if upset { UPSET_OPEN[l] } else { POLITE_OPEN[l] },
    ));
    let at = out.len();
    fill_pick(rng, lx, bank[usize::from(topic.min(5))], out);
    if out[start..at].is_empty() || out[..at].ends_with(". ") || out[..at].ends_with("! ") {
        capitalize_from(out, at);
    } else if rng.random_bool(0.5) {
        capitalize_from(out, start);
    }
    if upset && rng.random_bool(0.25) {
        out.push_str(pick(rng, &[". ", ", and "]));
        fill_pick(rng, lx, lx.neg, out);
    }
    if out.ends_with('?') {
        if !upset && rng.random_bool(0.5) {
            out.push_str(&pick(rng, POLITE_CLOSE[l])[1..]);
        }
    } else {
        out.push_str(pick(
            rng,
            if upset {
                UPSET_CLOSE[l]
            } else {
                POLITE_CLOSE[l]
            },
        ));
    }
}

const ISSUE: [&str; 6] = [
    "the mix-up with your order",
    "what you got from us",
    "the charge",
    "your delivery",
    "your question",
    "your message",
];

/// The business's first answer. Warm replies acknowledge and apologize;
/// cold ones state policy and shift blame. Replies are in English: the shop
/// answers in one language, whatever the customer wrote in.
pub fn reply<R: Rng>(rng: &mut R, topic: u8, warm: bool, bot: bool, out: &mut String) {
    let topic = usize::from(topic.min(5));
    let question = topic >= 4;
    if bot {
        if warm {
            out.push_str(pick(rng, &["Hi there! 😊 ", "Hello! ", "Hi! "]));
            out.push_str("I'm Crumb, the virtual assistant. ");
            if question {
                out.push_str("Thanks so much for asking! ");
                out.push_str(pick(rng, ANSWERS[topic - 4]));
            } else {
                out.push_str(pick(
                    rng,
                    &["I'm really sorry about ", "So sorry to hear about "],
                ));
                out.push_str(ISSUE[topic]);
                out.push_str(". ");
                out.push_str(pick(
                    rng,
                    &[
                        "I've created a case and someone from the team will make it right.",
                        "I understand how annoying this is, and a colleague will call you back today.",
                    ],
                ));
            }
            out.push_str(pick(
                rng,
                &[" Thank you for your patience!", " Have a lovely day!"],
            ));
        } else {
            out.push_str(pick(
                rng,
                &[
                    "Automated message: your ticket has been registered. Reply 1 for orders, 2 for billing, 3 for other.",
                    "Your message has been received. Response times may vary.",
                    "This channel does not handle refunds. Use the form on the website.",
                    "Request logged. Check the FAQ for common questions.",
                ],
            ));
        }
        return;
    }
    if warm {
        out.push_str(pick(
            rng,
            &["Hi there, ", "Hello! ", "Dear customer, ", "Hi, "],
        ));
        if question {
            out.push_str(pick(
                rng,
                &["great question! ", "thanks so much for asking! "],
            ));
            out.push_str(pick(rng, ANSWERS[topic - 4]));
        } else {
            let at = out.len();
            out.push_str(pick(
                rng,
                &[
                    "I'm so sorry about {i}.",
                    "we're really sorry to hear about {i}, that's not the experience we want you to have.",
                    "I completely understand how frustrating that must be, and I'm sorry.",
                    "thank you for letting us know, and sorry for the trouble with {i}.",
                ],
            ));
            if let Some(p) = out[at..].find("{i}") {
                out.replace_range(at + p..at + p + 3, ISSUE[topic]);
            }
            out.push(' ');
            out.push_str(pick(
                rng,
                &[
                    "I've refunded the amount to your card; it should show in 3-5 days.",
                    "I've passed this on to the baker on shift so it doesn't happen again.",
                    "We'd love to make it up to you: your next coffee is on us.",
                    "I've added a credit to your loyalty card.",
                    "I've spoken with the team this morning.",
                ],
            ));
        }
        out.push(' ');
        out.push_str(pick(
            rng,
            &[
                "Thanks for your patience!",
                "Hope to see you again soon :)",
                "Have a lovely day!",
                "Let me know if there's anything else I can do.",
            ],
        ));
    } else if question {
        out.push_str(pick(
            rng,
            &[
                "See the allergen list on our website.",
                "Refer to the FAQ.",
                "Information is available in store.",
                "We do not answer this via support.",
            ],
        ));
    } else {
        out.push_str(pick(
            rng,
            &[
                "Your request has been received.",
                "As stated in our terms, refunds take up to 10 business days.",
                "The order was prepared as requested.",
                "We are unable to verify this claim.",
            ],
        ));
        if rng.random_bool(0.7) {
            out.push(' ');
            out.push_str(pick(
                rng,
                &[
                    "Please check your order before leaving the counter.",
                    "You should have reported this at the counter.",
                    "Please read the FAQ before contacting support.",
                    "Delivery times are estimates and not guaranteed.",
                    "This is the courier's responsibility, not ours.",
                    "Ticket closed.",
                ],
            ));
        }
    }
}

const ANSWERS: [&[&str]; 2] = [
    &[
        "Our kitchen also handles nuts, so we can't guarantee anything is nut-free. ",
        "We bake gluten-free bread every Tuesday and Friday. ",
        "All ingredients are on the allergen sheet at the counter, and I'm happy to check anything for you. ",
    ],
    &[
        "Yes, we cater for groups of 10 or more; I'll send you the menu. ",
        "We've found your scarf, it's waiting for you at the counter. ",
        "We're open 8:00-14:00 on public holidays. ",
        "Gift cards are available in the app. ",
    ],
];

/// The CRM's free-text note about a customer; some hold a phone number.
/// Returns whether a phone number was written.
pub fn note<R: Rng>(rng: &mut R, lang: u8, out: &mut String) -> bool {
    if rng.random_bool(0.3) {
        out.push_str(pick(rng, &["call back on ", "prefers calls: ", "mobile "]));
        out.push_str(&super::people::phone(rng, lang));
        if rng.random_bool(0.5) {
            out.push_str(pick(
                rng,
                &[
                    " (after 5pm)",
                    " re: catering order",
                    ", asked about birthday cakes",
                ],
            ));
        }
        return true;
    }
    out.push_str(pick(
        rng,
        &[
            "prefers oat milk",
            "allergic to nuts",
            "orders a birthday cake every March",
            "regular, flat white no sugar",
            "asked about catering",
            "wants invoices by email",
            "complained about parking",
            "VIP - owner's neighbour",
            "coeliac, ask before recommending",
            "\"the usual\" = 2 croissants, 1 latte",
        ],
    ));
    false
}

/// Appends a sentence that leaks one piece of personal data.
pub fn append_pii<R: Rng>(rng: &mut R, lang: u8, kind: Pii, out: &mut String) {
    let l = usize::from(lang.min(2));
    if !out.is_empty() {
        out.push_str(pick(rng, &[" ", ". ", " - "]));
    }
    let lead: [[&[&str]; 5]; 3] = [
        [
            &["you can email me at ", "my email is ", "contact me: "],
            &["call me on ", "my number is ", "call back on "],
            &["my card ", "card number ", "refund to card "],
            &["please refund to ", "my IBAN is "],
            &["your site blocked my IP ", "the error page said my IP was "],
        ],
        [
            &["mi correo es "],
            &["llámame al "],
            &["mi tarjeta "],
            &["devolución a "],
            &["mi IP es "],
        ],
        [
            &["meine E-Mail ist "],
            &["ruft mich an unter "],
            &["meine Karte "],
            &["bitte auf "],
            &["meine IP ist "],
        ],
    ];
    let k = Pii::ALL.iter().position(|p| *p == kind).unwrap_or(0);
    out.push_str(pick(rng, lead[l][k]));
    match kind {
        Pii::Email => out.push_str(&super::people::random_email(rng)),
        Pii::Phone => out.push_str(&super::people::phone(rng, lang)),
        Pii::Card => {
            out.push_str(&super::people::card_number(rng));
            if l == 0 {
                out.push_str(" was charged twice");
            }
        }
        Pii::Iban => {
            out.push_str(&super::people::iban(rng));
            if l == 2 {
                out.push_str(" erstatten");
            }
        }
        Pii::Ip => {
            let mut v = Vec::with_capacity(15);
            super::people::push_ip(&mut v, super::people::ip(rng));
            out.push_str(std::str::from_utf8(&v).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn texts_vary_and_have_no_line_breaks() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..600u32 {
            let mut s = String::new();
            let tone =
                [Tone::Positive, Tone::Mixed, Tone::Neutral, Tone::Negative][(i % 4) as usize];
            comment(&mut rng, (i % 3) as u8, tone, &mut s);
            assert!(!s.contains('\n') && !s.contains('{'), "{s}");
            seen.insert(s);
            let mut t = String::new();
            ticket_message(&mut rng, (i % 3) as u8, (i % 6) as u8, i % 2 == 0, &mut t);
            assert!(!t.contains('{') && !t.is_empty(), "{t}");
            let mut r = String::new();
            reply(&mut rng, (i % 6) as u8, i % 2 == 0, i % 5 == 0, &mut r);
            assert!(!r.contains('{') && !r.is_empty(), "{r}");
        }
        assert!(seen.len() > 400, "only {} distinct comments", seen.len());
    }
}
