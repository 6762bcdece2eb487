//! Splitting a message into tokens, as vaderSentiment does (whitespace, then
//! punctuation stripped from the ends unless the token is an emoticon), with
//! the changes a customer's free text needs:
//!
//! - redaction placeholders (`[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`, `[IP]`)
//!   are dropped, so redaction never changes a score;
//! - emoji are tokens of their own even when glued to a word ("great😀"), and
//!   skin tones, variation selectors and joiners are ignored;
//! - words glued by punctuation ("good,fast") are split, and `.`, `!`, `?`,
//!   `;` mark a sentence boundary that negation and boosters do not cross;
//! - `,`, `:`, `;` and a dash (`–`, `—`, or `-` standing alone) mark a clause
//!   break, which ends a German clause ("gefällt mir nicht, zu trocken");
//! - curly apostrophes count as straight ones ("don’t" = "don't").
//!
//! Tokens are lowercased into one reused buffer; nothing is allocated per word.

use super::lexicon::FxMap;

/// The placeholders the ingest redactor writes into free text.
pub const PLACEHOLDERS: [&str; 5] = ["[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[IP]"];

/// Sentinel for "not an emoji".
pub(crate) const NO_EMOJI: u32 = u32::MAX;

/// One token: a word, an emoticon or an emoji.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tok {
    /// Byte range of the lowercased form in [`Tokens::lower`].
    pub start: u32,
    pub end: u32,
    /// Python's `str.isupper()` on the original token: a cased letter and no lowercase one.
    pub upper: bool,
    /// The token has a letter (a word, not a number, emoticon or emoji).
    pub alpha: bool,
    /// The original token starts with an uppercase letter.
    pub capitalized: bool,
    /// A sentence boundary (`.`, `!`, `?`, `;`) lies between the previous token and this one.
    pub boundary_before: bool,
    /// A clause break (`,`, `:`, `;`, a dash) or a sentence boundary lies
    /// between the previous token and this one.
    pub clause_before: bool,
    /// Index into the scorer's emoji table, or [`NO_EMOJI`].
    pub emoji: u32,
}

/// The tokens of one message, with reusable buffers.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// Every token's lowercase form, separated by spaces (also the text given
    /// to the language detector, placeholders already removed).
    pub lower: String,
    pub toks: Vec<Tok>,
    /// Exclamation marks and question marks in the message (VADER's punctuation emphasis).
    pub exclamations: u32,
    pub questions: u32,
}

impl Tokens {
    /// The lowercase form of token `i`.
    #[inline]
    pub fn word(&self, i: usize) -> &str {
        let t = &self.toks[i];
        &self.lower[t.start as usize..t.end as usize]
    }

    pub fn len(&self) -> usize {
        self.toks.len()
    }

    /// VADER's `allcap_differential`: some, but not all, tokens are ALL CAPS.
    pub fn cap_differential(&self) -> bool {
        let upper = self.toks.iter().filter(|t| t.upper).count();
        upper > 0 && upper < self.toks.len()
    }
}

/// What the tokenizer needs to know about symbols.
pub(crate) struct SymbolTable<'a> {
    /// Emoticons and other symbol entries, lowercase (kept whole, never stripped).
    pub symbols: &'a FxMap<Box<str>, ()>,
    /// Emoji character → index into the scorer's emoji table.
    pub emoji: &'a FxMap<char, u32>,
}

/// Characters removed from the ends of a word.
#[inline]
fn is_strippable(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '¡' | '¿'
                | '«'
                | '»'
                | '„'
                | '“'
                | '”'
                | '‘'
                | '’'
                | '‚'
                | '…'
                | '–'
                | '—'
                | '´'
                | '·'
        )
}

/// Punctuation that ends a clause without ending the sentence.
#[inline]
fn is_clause_mark(c: char) -> bool {
    matches!(c, ',' | ':' | ';' | '–' | '—')
}

/// The breaks seen since the last token, given to the next one.
#[derive(Debug, Default)]
struct Breaks {
    sentence: bool,
    clause: bool,
}

impl Breaks {
    /// `(boundary_before, clause_before)` for the next token, resetting both.
    #[inline]
    fn take(&mut self) -> (bool, bool) {
        let sentence = std::mem::take(&mut self.sentence);
        let clause = std::mem::take(&mut self.clause);
        (sentence, clause || sentence)
    }
}

/// Characters that split a token in two ("good,fast").
#[inline]
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ',' | ';'
            | '!'
            | '?'
            | '('
            | ')'
            | '"'
            | '['
            | ']'
            | '{'
            | '}'
            | '…'
            | '¡'
            | '¿'
            | '/'
            | '«'
            | '»'
            | '“'
            | '”'
            | '„'
    )
}

/// Characters that are part of an emoji sequence but mean nothing alone.
#[inline]
fn is_emoji_modifier(c: char) -> bool {
    matches!(
        c,
        '\u{FE0E}' | '\u{FE0F}' | '\u{200D}' | '\u{20E3}' | '\u{1F3FB}'..='\u{1F3FF}'
    ) || ('\u{E0020}'..='\u{E007F}').contains(&c)
}

/// Tokenizes `text` into `out` (cleared first).
pub(crate) fn tokenize(text: &str, table: &SymbolTable<'_>, out: &mut Tokens) {
    out.lower.clear();
    out.toks.clear();
    out.exclamations = 0;
    out.questions = 0;
    for b in text.bytes() {
        match b {
            b'!' => out.exclamations += 1,
            b'?' => out.questions += 1,
            _ => {}
        }
    }
    let mut breaks = Breaks::default();
    for raw in text.split_whitespace() {
        // A whole token that is an emoticon (":)", ":-D", "<3") stays as it is.
        if raw.len() <= 8 && raw.bytes().any(|b| b.is_ascii_punctuation()) {
            let start = out.lower.len();
            push_lower(&mut out.lower, raw);
            if table.symbols.contains_key(&out.lower[start..]) {
                out.lower.push(' ');
                let (boundary_before, clause_before) = breaks.take();
                out.toks.push(Tok {
                    start: start as u32,
                    end: (out.lower.len() - 1) as u32,
                    upper: is_upper(raw),
                    alpha: false,
                    capitalized: false,
                    boundary_before,
                    clause_before,
                    emoji: NO_EMOJI,
                });
                continue;
            }
            out.lower.truncate(start);
        }
        let mut piece_start = 0;
        let mut i = 0;
        let bytes = raw.as_bytes();
        while i < raw.len() {
            if bytes[i] == b'['
                && let Some(p) = PLACEHOLDERS.iter().find(|p| raw[i..].starts_with(**p))
            {
                push_piece(&raw[piece_start..i], &mut breaks, out);
                i += p.len();
                piece_start = i;
                continue;
            }
            let c = raw[i..].chars().next().expect("i is on a char boundary");
            let len = c.len_utf8();
            if c.is_ascii() {
                if is_separator(c) || (c == '.' && !next_is_digit(raw, i + 1)) {
                    push_piece(&raw[piece_start..i], &mut breaks, out);
                    if matches!(c, '.' | '!' | '?' | ';') {
                        breaks.sentence = true;
                    }
                    if is_clause_mark(c) {
                        breaks.clause = true;
                    }
                    piece_start = i + len;
                }
            } else if is_emoji_modifier(c) {
                push_piece(&raw[piece_start..i], &mut breaks, out);
                piece_start = i + len;
            } else if !c.is_alphabetic() {
                if let Some(&idx) = table.emoji.get(&c) {
                    push_piece(&raw[piece_start..i], &mut breaks, out);
                    let start = out.lower.len();
                    out.lower.push(c);
                    let (boundary_before, clause_before) = breaks.take();
                    out.toks.push(Tok {
                        start: start as u32,
                        end: out.lower.len() as u32,
                        upper: false,
                        alpha: false,
                        capitalized: false,
                        boundary_before,
                        clause_before,
                        emoji: idx,
                    });
                    out.lower.push(' ');
                    piece_start = i + len;
                } else if is_separator(c) || c == '…' {
                    push_piece(&raw[piece_start..i], &mut breaks, out);
                    if c == '…' {
                        breaks.sentence = true;
                    }
                    piece_start = i + len;
                }
            }
            i += len;
        }
        push_piece(&raw[piece_start..], &mut breaks, out);
    }
    if out.lower.ends_with(' ') {
        out.lower.pop();
    }
}

#[inline]
fn next_is_digit(raw: &str, at: usize) -> bool {
    raw.as_bytes().get(at).is_some_and(u8::is_ascii_digit)
}

/// Pushes one piece of a token (punctuation stripped from its ends), if
/// anything is left; a clause mark among the stripped punctuation is a break.
fn push_piece(piece: &str, breaks: &mut Breaks, out: &mut Tokens) {
    let trimmed = piece.trim_matches(is_strippable);
    if trimmed.is_empty() {
        // A hyphen standing alone is a dash; inside a word ("gluten-free") it is not.
        if piece.chars().any(is_clause_mark)
            || (!piece.is_empty() && piece.bytes().all(|b| b == b'-'))
        {
            breaks.clause = true;
        }
        return;
    }
    let lead = piece.len() - piece.trim_start_matches(is_strippable).len();
    if piece[..lead].chars().any(is_clause_mark) {
        breaks.clause = true;
    }
    let (boundary_before, clause_before) = breaks.take();
    let start = out.lower.len();
    push_lower(&mut out.lower, trimmed);
    let end = out.lower.len();
    out.lower.push(' ');
    out.toks.push(Tok {
        start: start as u32,
        end: end as u32,
        upper: is_upper(trimmed),
        alpha: trimmed.chars().any(char::is_alphabetic),
        capitalized: trimmed.chars().next().is_some_and(char::is_uppercase),
        boundary_before,
        clause_before,
        emoji: NO_EMOJI,
    });
    let trail = piece.len() - piece.trim_end_matches(is_strippable).len();
    if piece[piece.len() - trail..].chars().any(is_clause_mark) {
        breaks.clause = true;
    }
}

/// Lowercases `s` onto `buf`, with curly apostrophes made straight.
#[inline]
fn push_lower(buf: &mut String, s: &str) {
    if s.is_ascii() {
        buf.extend(s.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        return;
    }
    for c in s.chars() {
        match c {
            '’' | '‘' | '´' | '`' => buf.push('\''),
            c if c.is_uppercase() => buf.extend(c.to_lowercase()),
            c => buf.push(c),
        }
    }
}

/// Python's `str.isupper()`: at least one cased character and no lowercase one.
#[inline]
fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> (Vec<String>, Tokens) {
        let mut symbols: FxMap<Box<str>, ()> = FxMap::default();
        for s in [":)", ":(", ":d", "<3"] {
            symbols.insert(s.into(), ());
        }
        let mut emoji: FxMap<char, u32> = FxMap::default();
        emoji.insert('😀', 0);
        emoji.insert('👍', 1);
        let table = SymbolTable {
            symbols: &symbols,
            emoji: &emoji,
        };
        let mut out = Tokens::default();
        tokenize(text, &table, &mut out);
        let words = (0..out.len()).map(|i| out.word(i).to_string()).collect();
        (words, out)
    }

    #[test]
    fn splits_like_vader_with_fixes() {
        let cases: &[(&str, &[&str])] = &[
            ("The book was good.", &["the", "book", "was", "good"]),
            (
                "Make sure you :) or :D today!",
                &["make", "sure", "you", ":)", "or", ":d", "today"],
            ),
            ("great😀good", &["great", "😀", "good"]),
            ("👍🏽 thanks", &["👍", "thanks"]),
            ("good,fast;cheap", &["good", "fast", "cheap"]),
            ("Don’t go", &["don't", "go"]),
            (
                "¡Qué rico! ¿Cuándo abren?",
                &["qué", "rico", "cuándo", "abren"],
            ),
            (
                "call [PHONE] or mail [EMAIL],[IBAN]",
                &["call", "or", "mail"],
            ),
            ("[EMAIL][PHONE][CARD][IBAN][IP]", &[]),
            ("it cost 3.50 euros", &["it", "cost", "3.50", "euros"]),
            ("   ", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(toks(text).0, *want, "{text}");
        }
    }

    #[test]
    fn marks_caps_boundaries_and_punctuation() {
        let (_, t) = toks("VERY good. Not bad!! Why??");
        assert!(t.toks[0].upper && !t.toks[1].upper);
        assert!(t.toks[2].boundary_before, "after the full stop");
        assert!(!t.toks[3].boundary_before);
        assert!(t.toks[4].boundary_before, "after !!");
        assert_eq!((t.exclamations, t.questions), (2, 2));
        assert!(t.cap_differential());
        assert!(t.toks[2].capitalized && !t.toks[3].capitalized);
        assert_eq!(t.lower, "very good not bad why");
    }

    #[test]
    fn marks_clause_breaks_apart_from_sentence_boundaries() {
        let (words, t) = toks("nicht, zu trocken: gut – kalt;warm - gluten-free —ok x- y");
        assert_eq!(
            words,
            [
                "nicht",
                "zu",
                "trocken",
                "gut",
                "kalt",
                "warm",
                "gluten-free",
                "ok",
                "x",
                "y"
            ]
        );
        let clause: Vec<bool> = t.toks.iter().map(|t| t.clause_before).collect();
        let sentence: Vec<bool> = t.toks.iter().map(|t| t.boundary_before).collect();
        assert_eq!(
            clause,
            [
                false, true, false, true, true, true, true, true, false, false
            ]
        );
        assert_eq!(
            sentence,
            [
                false, false, false, false, false, true, false, false, false, false
            ]
        );
        let (_, t) = toks("good. bad");
        assert!(t.toks[1].boundary_before && t.toks[1].clause_before);
    }

    #[test]
    fn python_isupper() {
        assert!(is_upper("I"));
        assert!(is_upper("GREAT1"));
        assert!(!is_upper("Great"));
        assert!(!is_upper("123"));
        assert!(is_upper("ÜBEL"));
    }
}
