//! Who the bakery's customers are: names, contact details, devices, and the
//! personal data that leaks into free text.
//!
//! Contact details are a pure function of (seed, customer index): the
//! customers export and the feedback export's undeclared `respondent_email`
//! then agree without the generator keeping a million strings in memory.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub const LANGS: [&str; 3] = ["en", "es", "de"];
pub const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];
pub const GENDERS: [&str; 4] = ["female", "male", "non_binary", "undisclosed"];

/// Index of `east` in [`REGIONS`]: the region the offer engine short-changes.
pub const EAST: u8 = 2;

const EN_FEMALE: &[&str] = &[
    "Emma",
    "Olivia",
    "Sophie",
    "Grace",
    "Chloe",
    "Amelia",
    "Hannah",
    "Lucy",
    "Ella",
    "Charlotte",
    "Mia",
    "Jessica",
    "Isla",
    "Ruby",
    "Megan",
    "Sarah",
    "Laura",
    "Rachel",
    "Alice",
    "Margaret",
    "Dorothy",
    "Joan",
    "Patricia",
    "Susan",
];
const EN_MALE: &[&str] = &[
    "Oliver", "Jack", "Harry", "George", "Thomas", "James", "William", "Daniel", "Samuel",
    "Joseph", "Liam", "Noah", "Ethan", "Ryan", "Connor", "Michael", "David", "Peter", "Robert",
    "Richard", "Kenneth", "Brian", "Graham", "Colin",
];
const EN_LAST: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood",
    "Jackson", "Clarke", "O'Brien", "Murphy", "Kelly", "Byrne", "Patel", "Khan", "Campbell",
    "Stewart",
];
const ES_FEMALE: &[&str] = &[
    "María", "Lucía", "Carmen", "Sofía", "Paula", "Laura", "Marta", "Elena", "Ana", "Isabel",
    "Cristina", "Pilar", "Rocío", "Nerea", "Alba", "Julia", "Mercedes", "Dolores",
];
const ES_MALE: &[&str] = &[
    "Antonio",
    "José",
    "Manuel",
    "Francisco",
    "David",
    "Javier",
    "Daniel",
    "Carlos",
    "Jesús",
    "Alejandro",
    "Miguel",
    "Pablo",
    "Álvaro",
    "Sergio",
    "Íñigo",
    "Raúl",
    "Andrés",
    "Joaquín",
];
const ES_LAST: &[&str] = &[
    "García",
    "Fernández",
    "González",
    "Rodríguez",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Navarro",
    "Torres",
    "Domínguez",
    "Vázquez",
    "Castillo",
    "Ortega",
];
const DE_FEMALE: &[&str] = &[
    "Anna",
    "Lena",
    "Marie",
    "Sophie",
    "Hannah",
    "Lea",
    "Katharina",
    "Julia",
    "Sabine",
    "Petra",
    "Ursula",
    "Monika",
    "Birgit",
    "Jana",
    "Greta",
    "Frieda",
    "Jutta",
    "Ingrid",
];
const DE_MALE: &[&str] = &[
    "Lukas",
    "Jonas",
    "Felix",
    "Maximilian",
    "Paul",
    "Leon",
    "Tobias",
    "Stefan",
    "Jürgen",
    "Thomas",
    "Michael",
    "Andreas",
    "Uwe",
    "Klaus",
    "Dieter",
    "Matthias",
    "Jörg",
    "Florian",
];
const DE_LAST: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Weiß",
    "Groß",
    "Lange",
];

const EMAIL_DOMAINS: [&[&str]; 3] = [
    &[
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "yahoo.co.uk",
        "icloud.com",
        "proton.me",
    ],
    &[
        "gmail.com",
        "hotmail.es",
        "yahoo.es",
        "outlook.es",
        "telefonica.net",
    ],
    &["gmx.de", "web.de", "t-online.de", "gmail.com", "posteo.de"],
];

/// Two-digit postal prefixes per region, so the generalized `postal_prefix`
/// still says something about where a customer lives.
const POSTAL_PREFIX: [&[u32]; 5] = [
    &[10, 11, 12, 13],
    &[80, 81, 82],
    &[60, 61, 62, 63],
    &[40, 41, 42],
    &[30, 31, 32, 33],
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "CrumbApp/3.2.1 (iOS 17.5; iPhone14,2)",
    "CrumbApp/3.2.0 (Android 14; SM-A546B)",
];

/// First octets of public European ISP ranges: realistic, never private.
const IP_FIRST_OCTETS: &[u8] = &[
    2, 5, 31, 37, 46, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    176, 178, 185, 188, 212, 213, 217,
];

/// A customer's own random stream, independent of the simulation's.
pub fn customer_rng(seed: u64, idx: u32) -> Xoshiro256PlusPlus {
    let salt = (u64::from(idx) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5EED_C0FF_EE00_0000 ^ salt)
}

/// Name and contact details of one customer.
pub struct Contact {
    pub full_name: String,
    pub email: String,
    pub phone: String,
}

fn pick<'a, R: Rng>(rng: &mut R, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

/// The contact details of customer `idx` (the same on every call).
pub fn contact(seed: u64, idx: u32, lang: u8, gender: u8) -> Contact {
    let mut rng = customer_rng(seed, idx);
    // A tenth of customers carry a name from another language group: real
    // customer bases are mixed, and language must not be guessable from names.
    let name_lang = if rng.random_bool(0.1) {
        rng.random_range(0..3u8)
    } else {
        lang
    };
    let female = match gender {
        0 => true,
        1 => false,
        _ => rng.random_bool(0.5),
    };
    let (firsts, lasts) = match (name_lang, female) {
        (1, true) => (ES_FEMALE, ES_LAST),
        (1, false) => (ES_MALE, ES_LAST),
        (2, true) => (DE_FEMALE, DE_LAST),
        (2, false) => (DE_MALE, DE_LAST),
        (_, true) => (EN_FEMALE, EN_LAST),
        (_, false) => (EN_MALE, EN_LAST),
    };
    let first = pick(&mut rng, firsts);
    let last = pick(&mut rng, lasts);
    let mut full_name = String::with_capacity(32);
    full_name.push_str(first);
    full_name.push(' ');
    full_name.push_str(last);
    if name_lang == 1 && rng.random_bool(0.7) {
        full_name.push(' ');
        full_name.push_str(pick(&mut rng, ES_LAST));
    }
    let mut email = String::with_capacity(40);
    match rng.random_range(0..4u8) {
        0 => {
            ascii_fold(first, &mut email);
            email.push('.');
            ascii_fold(last, &mut email);
        }
        1 => {
            ascii_fold(first, &mut email);
            ascii_fold(last, &mut email);
            push_num(&mut email, rng.random_range(1..100u32));
        }
        2 => {
            ascii_fold(
                &first[..first.chars().next().map_or(1, char::len_utf8)],
                &mut email,
            );
            email.push('.');
            ascii_fold(last, &mut email);
            push_num(&mut email, rng.random_range(1..1000u32));
        }
        _ => {
            ascii_fold(last, &mut email);
            email.push('_');
            ascii_fold(first, &mut email);
            push_num(&mut email, rng.random_range(1950..2010u32));
        }
    }
    email.push('@');
    email.push_str(pick(&mut rng, EMAIL_DOMAINS[usize::from(lang.min(2))]));
    let phone = phone(&mut rng, lang);
    Contact {
        full_name,
        email,
        phone,
    }
}

fn push_num(s: &mut String, n: u32) {
    s.push_str(itoa::Buffer::new().format(n));
}

/// Lower-case ASCII for e-mail local parts ("Müller" → "mueller").
fn ascii_fold(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            'á' | 'Á' | 'à' => out.push('a'),
            'é' | 'É' => out.push('e'),
            'í' | 'Í' => out.push('i'),
            'ó' | 'Ó' => out.push('o'),
            'ú' | 'Ú' => out.push('u'),
            'ñ' | 'Ñ' => out.push('n'),
            'ä' | 'Ä' => out.push_str("ae"),
            'ö' | 'Ö' => out.push_str("oe"),
            'ü' | 'Ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            '\'' | ' ' => {}
            c => out.push(c.to_ascii_lowercase()),
        }
    }
}

fn digits<R: Rng>(rng: &mut R, n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
}

/// A mobile number in the customer's country format.
pub fn phone<R: Rng>(rng: &mut R, lang: u8) -> String {
    let mut s = String::with_capacity(18);
    match lang {
        1 => {
            s.push_str("+34 6");
            digits(rng, 2, &mut s);
            s.push(' ');
            digits(rng, 3, &mut s);
            s.push(' ');
            digits(rng, 3, &mut s);
        }
        2 => {
            s.push_str("+49 15");
            digits(rng, 1, &mut s);
            s.push(' ');
            digits(rng, 8, &mut s);
        }
        _ => {
            s.push_str("+44 7");
            digits(rng, 3, &mut s);
            s.push(' ');
            digits(rng, 6, &mut s);
        }
    }
    s
}

/// A five-digit postal code whose prefix belongs to the region.
pub fn postal_code<R: Rng>(rng: &mut R, region: u8) -> u32 {
    let prefixes = POSTAL_PREFIX[usize::from(region.min(4))];
    prefixes[rng.random_range(0..prefixes.len())] * 1000 + rng.random_range(0..1000)
}

/// A public-looking IPv4 address, packed big-endian.
pub fn ip<R: Rng>(rng: &mut R) -> u32 {
    let first = IP_FIRST_OCTETS[rng.random_range(0..IP_FIRST_OCTETS.len())];
    (0..3).fold(u32::from(first), |acc, _| {
        (acc << 8) | u32::from(rng.random_range(1..255u8))
    })
}

/// Dotted-quad text of a packed IPv4 address.
pub fn push_ip(out: &mut Vec<u8>, ip: u32) {
    let mut b = itoa::Buffer::new();
    for (i, shift) in [24u32, 16, 8, 0].iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(b.format((ip >> shift) & 0xFF).as_bytes());
    }
}

pub fn user_agent(i: usize) -> &'static str {
    USER_AGENTS[i % USER_AGENTS.len()]
}

pub const USER_AGENT_COUNT: usize = USER_AGENTS.len();

/// A Luhn-valid Visa-style card number, formatted the ways people type them.
pub fn card_number<R: Rng>(rng: &mut R) -> String {
    let mut d = [0u8; 16];
    d[0] = 4;
    for x in d.iter_mut().take(15).skip(1) {
        *x = rng.random_range(0..10);
    }
    d[15] = luhn_check_digit(&d[..15]);
    let sep = match rng.random_range(0..3u8) {
        0 => "",
        1 => "-",
        _ => " ",
    };
    let mut s = String::with_capacity(19);
    for (i, x) in d.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push_str(sep);
        }
        s.push(char::from(b'0' + x));
    }
    s
}

/// The digit that makes `payload` followed by it pass the Luhn check.
pub fn luhn_check_digit(payload: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &x) in payload.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Whether a digit string passes the Luhn check.
#[cfg(test)]
pub fn luhn_valid(digits: &[u8]) -> bool {
    match digits.split_last() {
        Some((&last, payload)) => luhn_check_digit(payload) == last,
        None => false,
    }
}

/// A German or Spanish IBAN with correct mod-97 check digits, in groups of four.
pub fn iban<R: Rng>(rng: &mut R) -> String {
    let (country, len) = if rng.random_bool(0.6) {
        ("DE", 18)
    } else {
        ("ES", 20)
    };
    let mut bban = String::with_capacity(len);
    digits(rng, len, &mut bban);
    let check = iban_check_digits(country, &bban);
    let raw = format!("{country}{check:02}{bban}");
    let mut s = String::with_capacity(raw.len() + 6);
    for (i, c) in raw.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push(' ');
        }
        s.push(c);
    }
    s
}

/// ISO 13616 check digits for a numeric BBAN.
pub fn iban_check_digits(country: &str, bban: &str) -> u32 {
    let mut rem = 0u32;
    let mut feed = |c: char| {
        if let Some(d) = c.to_digit(10) {
            rem = (rem * 10 + d) % 97;
        } else if c.is_ascii_uppercase() {
            let v = u32::from(c as u8 - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    };
    bban.chars().chain(country.chars()).for_each(&mut feed);
    feed('0');
    feed('0');
    98 - rem
}

/// Whether an IBAN (spaces allowed) passes the mod-97 check.
#[cfg(test)]
pub fn iban_valid(iban: &str) -> bool {
    let s: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() < 5 {
        return false;
    }
    let (head, rest) = s.split_at(4);
    let mut rem = 0u32;
    for c in rest.chars().chain(head.chars()) {
        if let Some(d) = c.to_digit(10) {
            rem = (rem * 10 + d) % 97;
        } else if c.is_ascii_uppercase() {
            rem = (rem * 100 + u32::from(c as u8 - b'A') + 10) % 97;
        } else {
            return false;
        }
    }
    rem == 1
}

/// A stranger's e-mail address (someone mentioned in a comment).
pub fn random_email<R: Rng>(rng: &mut R) -> String {
    let lang = rng.random_range(0..3u8);
    let firsts = match lang {
        1 => ES_FEMALE,
        2 => DE_MALE,
        _ => EN_FEMALE,
    };
    let mut s = String::with_capacity(32);
    ascii_fold(pick(rng, firsts), &mut s);
    s.push('.');
    ascii_fold(
        pick(rng, [EN_LAST, ES_LAST, DE_LAST][usize::from(lang)]),
        &mut s,
    );
    push_num(&mut s, rng.random_range(1..100u32));
    s.push('@');
    s.push_str(pick(rng, EMAIL_DOMAINS[usize::from(lang)]));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pii_generators_produce_valid_numbers() {
        assert!(luhn_valid(&[
            4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
        ]));
        assert!(iban_valid("DE89 3704 0044 0532 0130 00"));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for _ in 0..200 {
            let card = card_number(&mut rng);
            let d: Vec<u8> = card
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            assert_eq!(d.len(), 16);
            assert!(luhn_valid(&d), "{card}");
            let iban = iban(&mut rng);
            assert!(iban_valid(&iban), "{iban}");
        }
    }

    #[test]
    fn contacts_are_stable() {
        let a = contact(7, 12, 2, 0);
        let b = contact(7, 12, 2, 0);
        assert_eq!(a.email, b.email);
        assert_eq!(a.full_name, b.full_name);
        assert!(a.email.is_ascii() && a.email.contains('@'));
    }
}
