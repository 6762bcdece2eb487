//! Emotion scores: frustration, confusion, anxiety, anger, joy, gratitude.
//!
//! Each emotion sums the weights of its cue words and phrases in the message
//! (`lexicon/emotions.tsv`, hand-written for attune), adjusted like VADER
//! adjusts valence, plus a few cues that are not words:
//! - a negated cue does not count ("not angry", "no stress", German "ich liebe
//!   ihn nicht"), negated as sentiment words are (see `valence`), except that a
//!   negated joy or gratitude cue ("not happy") counts half towards frustration;
//! - a booster right before a cue, or the cue in ALL CAPS, multiplies it by 1.3;
//! - each `?` (up to three) adds 0.4 to confusion;
//! - in a negative message, each `!` (up to three) and each ALL CAPS word adds
//!   to anger; in a positive one, each `!` adds to joy.
//!
//! The sum `x` becomes a score in [0, 1] as `1 - exp(-x)`: one cue that names
//! the emotion (weight 1.5) gives 0.78, a weak cue (0.5) gives 0.39.

use super::EMOTION_COUNT;
use super::lexicon::Language;
use super::tokenize::{NO_EMOJI, Tokens};
use super::valence::{self, Slot, Words};

const FRUSTRATION: usize = 0;
const CONFUSION: usize = 1;
const ANGER: usize = 3;
const JOY: usize = 4;
const GRATITUDE: usize = 5;

/// Raw emotion sums of a message, before squashing into [0, 1].
pub(crate) fn raw(
    lang: &Language,
    tokens: &Tokens,
    words: &Words<'_>,
    slots: &[Slot],
    emoji_emotions: &[[f32; EMOTION_COUNT]],
    compound: f64,
) -> [f64; EMOTION_COUNT] {
    let n = tokens.len();
    let cap_diff = tokens.cap_differential();
    let mut sum = [0.0f64; EMOTION_COUNT];
    let mut i = 0;
    while i < n {
        let tok = &tokens.toks[i];
        let (weights, next) = if tok.emoji != NO_EMOJI {
            (emoji_emotions[tok.emoji as usize], i + 1)
        } else {
            match lang.get(words.get(i)) {
                None => {
                    i += 1;
                    continue;
                }
                Some(info) => {
                    let phrase = info.emotion_phrases.iter().find(|p| {
                        i + p.rest.len() < n
                            && p.rest.iter().enumerate().all(|(k, w)| {
                                let j = i + 1 + k;
                                !tokens.toks[j].boundary_before && words.get(j) == &**w
                            })
                    });
                    match phrase {
                        Some(p) => (p.weights, i + 1 + p.rest.len()),
                        None => (info.emotions, i + 1),
                    }
                }
            }
        };
        if weights.iter().any(|w| *w != 0.0) {
            let negated = valence::negated_before(lang, tokens, words, slots, i)
                || valence::post_negated(tokens, slots, next - 1);
            let mut factor = 1.0;
            if i > 0 && slots[i - 1].booster > 0.0 && !tok.boundary_before {
                factor *= 1.3;
            }
            if tok.upper && cap_diff {
                factor *= 1.3;
            }
            if negated {
                let positive = f64::from(weights[JOY] + weights[GRATITUDE]);
                sum[FRUSTRATION] += 0.5 * positive;
            } else {
                for (s, w) in sum.iter_mut().zip(weights) {
                    *s += f64::from(w) * factor;
                }
            }
        }
        i = next;
    }
    sum[CONFUSION] += 0.4 * f64::from(tokens.questions.min(3));
    let bangs = f64::from(tokens.exclamations.min(3));
    if compound <= -0.05 {
        sum[ANGER] += 0.25 * bangs;
        if cap_diff {
            let shouted = (0..n)
                .filter(|&i| {
                    tokens.toks[i].upper && tokens.toks[i].alpha && words.get(i).len() >= 3
                })
                .count()
                .min(3);
            sum[ANGER] += 0.4 * shouted as f64;
        }
    } else if compound >= 0.05 {
        sum[JOY] += 0.2 * bangs;
    }
    sum
}

/// Squashes a raw sum into [0, 1].
#[inline]
pub(crate) fn squash(x: f64) -> f64 {
    (1.0 - (-x.max(0.0)).exp()).clamp(0.0, 1.0)
}
