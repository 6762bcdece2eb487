//! Voice of the customer: sentiment and emotions of comments, tickets and reviews.
//!
//! - [`score`]: the sentiment and emotion scorer (lexicons and rules, en/es/de)

pub mod score;
