//! `whatlang::detect` for Latin-script text, computed from an index of its
//! trigram profiles instead of a scan of them: the same answer, bit for bit,
//! in about 3 µs instead of 40.
//!
//! `whatlang` (0.18) scores a Latin-script text against each of 37 languages'
//! 300 most frequent trigrams by looking every one of those 11,100 trigrams up
//! in the text's own trigrams: about 40 µs a call however short the text, and
//! four fifths of the scorer's time when messages do not repeat. A language's distance only changes where a profile trigram occurs
//! in the text, so this module inverts the profiles once (trigram → the
//! languages and ranks that have it) and visits only the text's own trigrams,
//! about forty for a typical message.
//!
//! Everything else is `whatlang`'s arithmetic replayed step by step (the
//! alphabet score, the weighting of the two methods, the ties left to the
//! same `sort_unstable` calls over the same vectors in the same order, the
//! confidence), so the language and the confidence are `whatlang`'s own, not
//! approximations: the language decision in `language` is unchanged. Texts
//! whose main script is not Latin (rare in feedback, and cheap for `whatlang`:
//! Cyrillic has 6 languages, most scripts one) go to `whatlang` itself.
//!
//! The profiles and alphabets are `whatlang`'s data
//! (`lexicon/whatlang_latin.tsv`, extracted from its source; MIT). The
//! dependency is pinned to that version in Cargo.toml, and the test below
//! compares this module with `whatlang::detect` on thousands of texts, so an
//! upgrade that changes the model fails loudly instead of drifting: upgrade
//! by extracting the file again from the new version's
//! `src/alphabets/latin.rs` and `src/trigrams/profiles.rs`, and if the test
//! still fails, the algorithm changed too.

use whatlang::{Lang, Script};

use super::lexicon::FxMap;

/// Trigrams of a language's profile (whatlang's `MAX_TRIGRAM_DISTANCE`): also
/// the distance charged for a profile trigram the text lacks.
const PROFILE_LEN: u32 = 300;
/// The text's most frequent trigrams that count (whatlang's `TEXT_TRIGRAMS_SIZE`).
const TEXT_TRIGRAMS: usize = 600;
/// Upper bound of a language's distance (whatlang's `MAX_TOTAL_DISTANCE`).
const MAX_TOTAL_DISTANCE: u32 = PROFILE_LEN * PROFILE_LEN;

/// One occurrence of a trigram in a profile.
#[derive(Debug, Clone, Copy)]
struct Posting {
    /// Index into [`LatinModel::profile_langs`].
    lang: u8,
    /// Rank in that language's profile (0 = most frequent).
    rank: u16,
}

/// The inverted Latin-script model of `whatlang`; build once, share by reference.
#[derive(Debug)]
pub(crate) struct LatinModel {
    /// The languages in whatlang's profile order; postings and alphabet bits index it.
    profile_langs: Vec<Lang>,
    /// Trigram key (see [`key`]) → its postings, a range of `postings`.
    index: FxMap<u64, (u32, u32)>,
    postings: Vec<Posting>,
    /// `Script::Latin.langs()`: the order whatlang's alphabet sort starts from.
    script_langs: Vec<Lang>,
    /// Index in `profile_langs` by `Lang as usize`.
    profile_index: Vec<u8>,
    /// Per ASCII character, the languages (bit = index in `profile_langs`)
    /// whose alphabet has it; other characters in `alphabet_other`.
    alphabet_ascii: [u64; 128],
    alphabet_other: FxMap<char, u64>,
}

/// Per-thread buffers for [`LatinModel::detect`].
#[derive(Debug, Default)]
pub(crate) struct LatinScratch {
    lower: String,
    keys: Vec<u64>,
    counted: Vec<(u32, u64)>,
}

/// A trigram as one integer whose order is the order of whatlang's
/// `Trigram(char, char, char)` (a char fits in 21 bits).
fn key(a: char, b: char, c: char) -> u64 {
    (u64::from(a) << 42) | (u64::from(b) << 21) | u64::from(c)
}

/// whatlang's `is_stop_char`: ASCII space, digits and punctuation.
fn is_stop_char(ch: char) -> bool {
    matches!(ch, '\u{0000}'..='\u{0040}' | '\u{005B}'..='\u{0060}' | '\u{007B}'..='\u{007E}')
}

impl LatinModel {
    /// Parses `lexicon/whatlang_latin.tsv`.
    pub fn parse(data: &str) -> Result<LatinModel, String> {
        let mut profile_langs = Vec::new();
        let mut profiles: Vec<Vec<u64>> = Vec::new();
        let mut alphabets: Vec<(Lang, &str)> = Vec::new();
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut cols = line.split('\t');
            let (Some(kind), Some(code), Some(value), None) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                return Err(format!(
                    "whatlang_latin.tsv: three columns expected in {line:?}"
                ));
            };
            let lang = Lang::from_code(code)
                .ok_or_else(|| format!("whatlang_latin.tsv: unknown language {code:?}"))?;
            match kind {
                "alphabet" => alphabets.push((lang, value)),
                "trigrams" => {
                    let mut profile = Vec::with_capacity(PROFILE_LEN as usize);
                    for t in value.split(' ') {
                        let mut chars = t.chars().map(|c| if c == '_' { ' ' } else { c });
                        let (Some(a), Some(b), Some(c), None) =
                            (chars.next(), chars.next(), chars.next(), chars.next())
                        else {
                            return Err(format!("whatlang_latin.tsv: {code}: bad trigram {t:?}"));
                        };
                        profile.push(key(a, b, c));
                    }
                    // The distance arithmetic below relies on full profiles
                    // without repeats, as whatlang's are.
                    let mut unique = profile.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    if profile.len() != PROFILE_LEN as usize || unique.len() != profile.len() {
                        return Err(format!(
                            "whatlang_latin.tsv: {code} has {} distinct trigrams of {}, not {PROFILE_LEN}",
                            unique.len(),
                            profile.len()
                        ));
                    }
                    profile_langs.push(lang);
                    profiles.push(profile);
                }
                other => return Err(format!("whatlang_latin.tsv: unknown kind {other:?}")),
            }
        }
        let latin = Script::Latin.langs();
        let position = |lang: Lang| profile_langs.iter().position(|l| *l == lang);
        let mut profile_index = vec![0u8; Lang::all().len()];
        for &lang in latin {
            let k = position(lang)
                .ok_or_else(|| format!("whatlang_latin.tsv: no profile for {}", lang.code()))?;
            profile_index[lang as usize] = k as u8;
        }
        // One bit per language in the alphabet masks.
        if profile_langs.len() != latin.len() || alphabets.len() != latin.len() || latin.len() > 64
        {
            return Err(format!(
                "whatlang_latin.tsv: {} profiles and {} alphabets for {} Latin-script languages",
                profile_langs.len(),
                alphabets.len(),
                latin.len()
            ));
        }

        let mut by_key: FxMap<u64, Vec<Posting>> = FxMap::default();
        for (lang, profile) in profiles.iter().enumerate() {
            for (rank, &k) in profile.iter().enumerate() {
                by_key.entry(k).or_default().push(Posting {
                    lang: lang as u8,
                    rank: rank as u16,
                });
            }
        }
        let mut index = FxMap::default();
        let mut postings = Vec::with_capacity(profiles.len() * PROFILE_LEN as usize);
        for (k, list) in by_key {
            index.insert(k, (postings.len() as u32, list.len() as u32));
            postings.extend(list);
        }

        let mut alphabet_ascii = [0u64; 128];
        let mut alphabet_other: FxMap<char, u64> = FxMap::default();
        for (lang, letters) in alphabets {
            let bit = 1u64
                << position(lang).ok_or_else(|| {
                    format!(
                        "whatlang_latin.tsv: alphabet without profile: {}",
                        lang.code()
                    )
                })?;
            for c in letters.chars() {
                // A letter listed twice would count twice in whatlang.
                if letters.chars().filter(|&d| d == c).count() > 1 {
                    return Err(format!("whatlang_latin.tsv: {c} twice in {}", lang.code()));
                }
                match usize::try_from(u32::from(c)) {
                    Ok(i) if i < 128 => alphabet_ascii[i] |= bit,
                    _ => *alphabet_other.entry(c).or_default() |= bit,
                }
            }
        }
        Ok(LatinModel {
            profile_langs,
            index,
            postings,
            script_langs: latin.to_vec(),
            profile_index,
            alphabet_ascii,
            alphabet_other,
        })
    }

    /// What `whatlang::detect(text)` returns: the language and its confidence.
    pub fn detect(&self, text: &str, scratch: &mut LatinScratch) -> Option<(Lang, f64)> {
        if whatlang::detect_script(text) != Some(Script::Latin) {
            return whatlang::detect(text).map(|i| (i.lang(), i.confidence()));
        }
        let LatinScratch {
            lower,
            keys,
            counted,
        } = scratch;
        // whatlang lowercases the whole text first (`str::to_lowercase`, which
        // a per-char loop would not match for a final Greek sigma).
        lower.clear();
        if text.is_ascii() {
            lower.extend(text.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            lower.push_str(&text.to_lowercase());
        }
        let lower = lower.as_str();

        // Trigrams: whatlang's `count` and `trigram_occurances_to_positions`.
        keys.clear();
        let mut chars = lower
            .chars()
            .map(|c| if is_stop_char(c) { ' ' } else { c })
            .chain(Some(' '));
        let mut c1 = ' ';
        let mut c2 = chars.next().expect("one space is chained on");
        for c3 in chars {
            if !(c2 == ' ' && (c1 == ' ' || c3 == ' ')) {
                keys.push(key(c1, c2, c3));
            }
            c1 = c2;
            c2 = c3;
        }
        keys.sort_unstable();
        counted.clear();
        for k in keys.iter() {
            match counted.last_mut() {
                Some((n, last)) if last == k => *n += 1,
                _ => counted.push((1, *k)),
            }
        }
        // Most frequent first, ties by the trigram, descending: the keys are
        // unique, so the order (and each trigram's position) is whatlang's.
        counted.sort_unstable_by(|a, b| b.cmp(a));
        counted.truncate(TEXT_TRIGRAMS);
        let count = counted.len();

        // Distances: a profile trigram at rank i costs |position - i| if the
        // text has it and PROFILE_LEN if not, so a language's sum is
        // PROFILE_LEN² minus what its matches save.
        let mut saved = [0i64; 64];
        for (position, &(_, k)) in counted.iter().enumerate() {
            if let Some(&(start, len)) = self.index.get(&k) {
                for p in &self.postings[start as usize..(start + len) as usize] {
                    let d = (position as i64 - i64::from(p.rank)).abs();
                    saved[p.lang as usize] += i64::from(PROFILE_LEN) - d;
                }
            }
        }
        // whatlang sorts the languages by distance here, but the combination
        // below looks each one up by language: that order never matters.
        let max_dist = count as u32 * PROFILE_LEN;
        let mut trigram_scores = [0.0f64; 64];
        for (k, score) in trigram_scores[..self.profile_langs.len()]
            .iter_mut()
            .enumerate()
        {
            let mut total = i64::from(MAX_TOTAL_DISTANCE) - saved[k];
            if (count as u32) < PROFILE_LEN {
                total -= i64::from((PROFILE_LEN - count as u32) * PROFILE_LEN);
            }
            let distance = total.clamp(0, i64::from(MAX_TOTAL_DISTANCE)) as u32;
            *score = f64::from(max_dist - distance) / f64::from(max_dist);
        }

        // Alphabets: whatlang's `generic_alphabet_calculate_scores`.
        let mut in_alphabet = [0usize; 64];
        let mut max_raw_score = 0usize;
        for ch in lower.chars() {
            if is_stop_char(ch) {
                continue;
            }
            max_raw_score += 1;
            let mut bits = match usize::try_from(u32::from(ch)) {
                Ok(i) if i < 128 => self.alphabet_ascii[i],
                _ => self.alphabet_other.get(&ch).copied().unwrap_or(0),
            };
            while bits != 0 {
                in_alphabet[bits.trailing_zeros() as usize] += 1;
                bits &= bits - 1;
            }
        }
        // The same element type as whatlang's vector, so that `sort_unstable`
        // leaves ties in the same order.
        let mut raw_scores: Vec<(Lang, usize)> = self
            .script_langs
            .iter()
            .map(|&lang| {
                let k = usize::from(self.profile_index[lang as usize]);
                (lang, (2 * in_alphabet[k]).saturating_sub(max_raw_score))
            })
            .collect();
        raw_scores.sort_unstable_by_key(|(_, score)| std::cmp::Reverse(*score));
        let alphabet_scores: Vec<(Lang, f64)> = raw_scores
            .iter()
            .map(|&(lang, raw)| (lang, raw as f64 / max_raw_score as f64))
            .collect();

        // Both combined: whatlang's `combined::raw_detect` and `detect`.
        let alphabet_weight =
            (-(max_raw_score as f64 / 300.0) + 2.0 / 3.0).clamp(1.0 / 3.0, 2.0 / 3.0);
        let trigram_weight = 1.0 - alphabet_weight;
        let mut scores: Vec<(Lang, f64)> = alphabet_scores
            .iter()
            .map(|&(lang, a)| {
                let t = trigram_scores[usize::from(self.profile_index[lang as usize])];
                (lang, a * alphabet_weight + t * trigram_weight)
            })
            .collect();
        scores.sort_unstable_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Less));
        let (lang, first) = *scores.first()?;
        let confidence = match scores.get(1) {
            Some(&(_, second)) => confidence(first, second, count),
            None => 1.0,
        };
        Some((lang, confidence))
    }
}

/// whatlang's `calculate_confidence`.
fn confidence(highest: f64, second: f64, count: usize) -> f64 {
    if highest == 0.0 {
        return 0.0;
    }
    if second == 0.0 {
        return highest;
    }
    let confident_rate = (3.0 / count as f64) + 0.015;
    let rate = (highest - second) / second;
    if rate > confident_rate {
        1.0
    } else {
        rate / confident_rate
    }
}

#[cfg(test)]
mod tests {
    //! Differential test: [`LatinModel::detect`] against `whatlang::detect`
    //! itself, the reference it replays, compared bit for bit.

    use rand::seq::IndexedRandom;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;

    fn model() -> LatinModel {
        LatinModel::parse(super::super::data::WHATLANG_LATIN).expect("the embedded model parses")
    }

    /// Texts that stress every step: the scorer's identity workload (real
    /// and foreign messages), every letter alone and every pair of ASCII
    /// letters (ties everywhere), random salads of letters from all 37
    /// alphabets with punctuation, digits, other scripts, uppercase and
    /// combining marks, and long runs of profile trigrams (more than 300 and
    /// more than 600 distinct trigrams).
    fn texts() -> Vec<String> {
        let data = super::super::data::WHATLANG_LATIN;
        let mut letters: Vec<char> = Vec::new();
        let mut trigrams: Vec<String> = Vec::new();
        for line in data.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            match cols[0] {
                "alphabet" => letters.extend(cols[2].chars()),
                _ => trigrams.extend(cols[2].split(' ').map(|t| t.replace('_', " "))),
            }
        }
        letters.sort_unstable();
        letters.dedup();
        let mut out: Vec<String> = super::super::identity::workload();
        out.extend(letters.iter().map(|c| c.to_string()));
        for a in 'a'..='z' {
            for b in 'a'..='z' {
                out.push(format!("{a}{b}"));
            }
        }
        let mut extra: Vec<char> =
            "  .,!?'-0123456789ABCDEFÄÖÜÑÉÇSΣσςİIıДжя水ほ😀👍🏽\u{301}\u{307}\u{7f}"
                .chars()
                .collect();
        extra.extend(&letters);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(37);
        for _ in 0..3000 {
            let n = rng.random_range(1..=80);
            out.push(
                (0..n)
                    .map(|_| *extra.choose(&mut rng).expect("not empty"))
                    .collect(),
            );
        }
        for k in 0..300 {
            let n = if k % 10 == 0 {
                rng.random_range(200..=1500)
            } else {
                rng.random_range(1..=30)
            };
            let mut s = String::new();
            for _ in 0..n {
                s.push_str(trigrams.choose(&mut rng).expect("not empty"));
                if rng.random_range(0..3) == 0 {
                    s.push(' ');
                }
            }
            out.push(s);
        }
        out
    }

    #[test]
    fn answers_exactly_as_whatlang() {
        let model = model();
        let mut scratch = LatinScratch::default();
        let mut latin = 0;
        for text in texts() {
            let want = whatlang::detect(&text).map(|i| (i.lang(), i.confidence().to_bits()));
            let got = model
                .detect(&text, &mut scratch)
                .map(|(lang, confidence)| (lang, confidence.to_bits()));
            assert_eq!(got, want, "{text:?}");
            latin += usize::from(whatlang::detect_script(&text) == Some(Script::Latin));
        }
        // The comparison is about the Latin path, not the fallback.
        assert!(latin > 10_000, "{latin} Latin-script texts");
    }
}
