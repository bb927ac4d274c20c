//! tierforge-data: the data half of tierforge.
//!
//! Reads product-content samples in the app's collection format, OpenAI chat `messages` JSONL or
//! prompt/completion JSONL ([`read`]), scores them with one transparent rubric ([`rubric`]),
//! and filters, deduplicates, splits, augments, exports and builds the progressive tier sets
//! that training consumes. The conversation format (user prompt, JSON answer, per-tier system
//! prompts) is defined once in [`completion`].
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod allocator;
pub mod augment;
mod byte_class;
pub mod clock;
pub mod completion;
pub mod dedup;
pub mod error;
pub mod export;
pub mod filter;
pub mod lexicon;
pub mod lines;
pub mod phrase_set;
pub mod read;
pub mod rng;
pub mod rubric;
pub mod sample;
pub mod score;
pub mod split;
pub mod stats;
pub mod svg;
pub mod text;
pub mod tiers;
pub mod write;

pub use completion::{parse_completion, user_prompt, ParseError, Tier};
pub use error::{DataError, Problem};
pub use lexicon::Lexicons;
pub use read::{read_file, read_files, ReadOutcome, Reject};
pub use rubric::{Report, Rubric, RubricConfig};
pub use sample::{Listing, Message, ProductInput, Sample};
pub use score::{score_all, summarise, Scored, Summary, SummaryBuilder};
