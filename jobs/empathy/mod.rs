//! The Empathy Index (placeholder while the job is written).

pub mod tone;
