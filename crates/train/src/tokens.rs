//! From chat samples to training tokens: render each conversation with the model's own chat
//! template, supervise only assistant turns (their content and the end-of-turn token that
//! closes them, honouring per-message `weight`), truncate to the sequence budget, and plan
//! length-grouped batches.

use tierforge_data::rng::{mix64, Rng};
use tierforge_data::sample::Sample;
use tierforge_model::{ChatTemplate, Message, Tokenizer};

use crate::error::{Result, TrainError};

/// One tokenized training sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The sample's id (its `id`, or `file:line`).
    pub id: String,
    pub ids: Vec<u32>,
    /// `supervised[i]`: token `i` is a training target (predicted from the tokens before it).
    pub supervised: Vec<bool>,
}

impl Example {
    /// Targets that can be trained on (token 0 has no context to be predicted from).
    pub fn num_targets(&self) -> usize {
        self.supervised.iter().skip(1).filter(|&&s| s).count()
    }
}

/// Tokenized data plus what truncation cost.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub examples: Vec<Example>,
    /// Samples longer than `max_seq_len`.
    pub truncated_samples: usize,
    /// Tokens cut off by truncation (all of them, supervised or not).
    pub tokens_lost: usize,
    /// Supervised tokens cut off by truncation.
    pub supervised_lost: usize,
    /// Records of the file that could not be read (skipped), with every reason.
    pub rejects: Vec<tierforge_data::read::Reject>,
}

impl Prepared {
    pub fn total_tokens(&self) -> usize {
        self.examples.iter().map(|e| e.ids.len()).sum()
    }
    pub fn supervised_tokens(&self) -> usize {
        self.examples.iter().map(Example::num_targets).sum()
    }
    /// Supervised share of all tokens, in 0..=1.
    pub fn supervised_share(&self) -> f64 {
        self.supervised_tokens() as f64 / self.total_tokens().max(1) as f64
    }
}

/// Render and tokenize one conversation and mark its supervised tokens.
///
/// `stop_ids` are the tokens that can close an assistant turn (end-of-turn, EOS): the first one
/// after an assistant message's content is supervised with it, so that the model learns to stop.
pub fn encode_conversation(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[tierforge_data::sample::Message],
    stop_ids: &[u32],
) -> Result<(Vec<u32>, Vec<bool>)> {
    let msgs: Vec<Message> = messages
        .iter()
        .map(|m| Message::new(m.role.clone(), m.content.clone()))
        .collect();
    let enc = template.encode(tokenizer, &msgs, false)?;
    let mut sup = vec![false; enc.ids.len()];
    for (m, span) in messages.iter().zip(&enc.messages) {
        if m.role != "assistant" || m.weight == Some(0) {
            continue;
        }
        let mut end = span.content.end;
        if let Some(k) = (span.content.end..span.turn.end).find(|&k| stop_ids.contains(&enc.ids[k]))
        {
            end = k + 1;
        }
        for s in &mut sup[span.content.start..end] {
            *s = true;
        }
    }
    Ok((enc.ids, sup))
}

/// Tokenize `samples` (`origin` names their file for errors), truncating to `max_seq_len`.
///
/// Errors before any training step: a sample that is not a conversation, a sample left without
/// a supervised token, or a set whose supervised share is under 1%.
pub fn prepare(
    samples: &[Sample],
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    stop_ids: &[u32],
    max_seq_len: usize,
    origin: &str,
) -> Result<Prepared> {
    if samples.is_empty() {
        return Err(TrainError::data(origin, "no samples to train on"));
    }
    let mut out = Prepared::default();
    for s in samples {
        let where_ = format!("{}:{}", s.origin.file, s.origin.line);
        let conv = tierforge_data::export::conversation(s, None).ok_or_else(|| {
            TrainError::data(
                &where_,
                format!(
                    "sample {}: no conversation (expected a `messages` array)",
                    s.id
                ),
            )
        })?;
        let (mut ids, mut sup) = encode_conversation(template, tokenizer, &conv, stop_ids)
            .map_err(|e| TrainError::data(&where_, format!("sample {}: {e}", s.id)))?;
        let truncated = ids.len() > max_seq_len;
        if truncated {
            out.truncated_samples += 1;
            out.tokens_lost += ids.len() - max_seq_len;
            out.supervised_lost += sup[max_seq_len..].iter().filter(|&&b| b).count();
            ids.truncate(max_seq_len);
            sup.truncate(max_seq_len);
        }
        let ex = Example {
            id: s.id.clone(),
            ids,
            supervised: sup,
        };
        if ex.num_targets() == 0 {
            let why = if truncated {
                format!(
                    "sample {} has no supervised token left after truncation to max_seq_len = {max_seq_len} \
                     tokens (raise max_seq_len or shorten the sample)",
                    s.id
                )
            } else {
                format!(
                    "sample {} has no supervised token (no assistant message with weight 1)",
                    s.id
                )
            };
            return Err(TrainError::data(&where_, why));
        }
        out.examples.push(ex);
    }
    if out.supervised_share() < 0.01 {
        return Err(TrainError::data(
            origin,
            format!(
                "only {:.2}% of the tokens are supervised ({} of {}); at least 1% is required",
                100.0 * out.supervised_share(),
                out.supervised_tokens(),
                out.total_tokens()
            ),
        ));
    }
    Ok(out)
}

/// The batches of one epoch, as indices into the examples: shuffled with the run's seed,
/// grouped by length inside windows of 16 batches (so padding stays small while the order
/// stays random), then the batch order shuffled again. A pure function of its arguments, so
/// a resumed run sees exactly the batches the interrupted one would have.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(mix64(seed ^ mix64(epoch as u64 + 1)));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    let window = batch_size.max(1) * 16;
    let mut batches = Vec::new();
    for chunk in order.chunks_mut(window) {
        chunk.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(chunk.chunks(batch_size.max(1)).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

/// A text rendering of an example: supervised runs wrapped in `[[ ]]`.
pub fn render_mask(ex: &Example, tokenizer: &Tokenizer) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ex.ids.len() {
        let flag = ex.supervised[i];
        let mut j = i;
        while j < ex.ids.len() && ex.supervised[j] == flag {
            j += 1;
        }
        let text = tokenizer
            .decode(&ex.ids[i..j], false)
            .unwrap_or_else(|_| format!("{:?}", &ex.ids[i..j]));
        if flag {
            out.push_str("[[");
            out.push_str(&text);
            out.push_str("]]");
        } else {
            out.push_str(&text);
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_example_once_and_are_reproducible() {
        let lengths: Vec<usize> = (0..37).map(|i| (i * 7919) % 101).collect();
        let a = epoch_batches(&lengths, 4, 3, 0);
        let b = epoch_batches(&lengths, 4, 3, 0);
        assert_eq!(a, b);
        let mut all: Vec<usize> = a.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..37).collect::<Vec<_>>());
        assert_ne!(a, epoch_batches(&lengths, 4, 3, 1), "epochs differ");
        // Grouped by length: within a batch lengths are sorted descending.
        for batch in &a {
            assert!(batch.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
        }
    }
}
