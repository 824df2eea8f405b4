//! Which of each publisher's messages a subscriber has seen, so that a benchmark counts
//! duplicates and deliveries out of order, not only lost ones.

/// Bits of a payload's sequence number that count a publisher's messages; the bits above
/// name the publisher.
pub(super) const SEQ_BITS: u32 = 40;

/// What one subscriber has seen of each publisher's sequence: duplicates and messages out
/// of order are told apart exactly (a bit per message, grown as numbers arrive).
#[derive(Default)]
pub(super) struct Sequences {
    seen: Vec<Vec<u64>>,
    highest: Vec<Option<u64>>,
    /// Deliveries of a message already received.
    pub(super) duplicates: u64,
    /// Deliveries after a later message of the same publisher.
    pub(super) misordered: u64,
}

impl Sequences {
    /// Notes one delivery of the payload numbered `tagged`.
    pub(super) fn record(&mut self, tagged: u64) {
        let (publisher, seq) = (
            usize::try_from(tagged >> SEQ_BITS).unwrap_or(usize::MAX),
            tagged & ((1 << SEQ_BITS) - 1),
        );
        if publisher >= 1 << 16 {
            return; // not a payload of ours
        }
        if self.seen.len() <= publisher {
            self.seen.resize_with(publisher + 1, Vec::new);
            self.highest.resize(publisher + 1, None);
        }
        let bits = &mut self.seen[publisher];
        let (word, bit) = (usize::try_from(seq / 64).unwrap_or(usize::MAX), seq % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        bits[word] |= 1 << bit;
        let highest = &mut self.highest[publisher];
        if highest.is_some_and(|h| seq < h) {
            self.misordered += 1;
        } else {
            *highest = Some(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Duplicates and late arrivals are told apart per publisher; a gap alone is neither.
    #[test]
    fn sequences_count_duplicates_and_misordered_per_publisher() {
        let mut s = Sequences::default();
        let tag = |publisher: u64, seq: u64| publisher << SEQ_BITS | seq;
        for seq in [0, 1, 3, 2, 3, 70, 69] {
            s.record(tag(0, seq));
        }
        // Another publisher's numbers are its own.
        for seq in [0, 1, 2] {
            s.record(tag(5, seq));
        }
        assert_eq!((s.duplicates, s.misordered), (1, 2));
    }
}
