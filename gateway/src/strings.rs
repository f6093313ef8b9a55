//! Strings to check a pattern of the OpenAPI description against the rule it describes: every short
//! string over an alphabet of the characters the rule treats differently, and longer random ones.

/// Every string of up to `exhaustive` characters over `alphabet`, then `random` strings of up to
/// `max_len` characters (deterministic, so a failure repeats).
pub(crate) fn over(alphabet: &[char], exhaustive: usize, random: usize, max_len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..exhaustive {
        layer = layer
            .iter()
            .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
            .collect();
        all.extend(layer.iter().cloned());
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |bound: usize| {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % bound
    };
    for _ in 0..random {
        let len = next(max_len + 1);
        all.push((0..len).map(|_| alphabet[next(alphabet.len())]).collect());
    }
    all
}
