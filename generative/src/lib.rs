//! Generative tests of the parsers of untrusted input (tests only): a
//! seeded generator of inputs mutated from a corpus of valid ones, and a
//! runner that names the failing input so it can become a regression test.
//!
//! `GENERATIVE_CASES` sets the cases per property (default 2,000, what
//! `scripts/test` runs); `GENERATIVE_SEED` another seed. The long run
//! (docs/benchmarks.md#generative-tests):
//! `GENERATIVE_CASES=200000 cargo test -p mogothrow77 -p mogothrow77-offline-bundle generative`.
//! Used by the unit tests of `appliance` and the tests of `offline-bundle`.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// A small, fast, seedable generator (xorshift64*): reproducible on every
/// platform, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Cases per property.
pub fn cases() -> usize {
    std::env::var("GENERATIVE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn seed() -> u64 {
    std::env::var("GENERATIVE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d6f_676f_7468_7237)
}

/// `input` changed a few times: bytes flipped, dropped or repeated, a
/// token of `dictionary` inserted, a range duplicated, cut short.
pub fn mutate(rng: &mut Rng, input: &[u8], dictionary: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 if !dictionary.is_empty() => {
                let token = rng.pick(dictionary).to_vec();
                out.splice(at..at, token);
            }
            3 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(32)).min(out.len());
                let piece = out[start..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, piece);
            }
            4 => out.truncate(at),
            5 => {
                let b = rng.next_u64() as u8;
                out.insert(at, b);
            }
            _ => {
                let n = rng.below(4);
                let noise = rng.bytes(n);
                out.splice(at..at, noise);
            }
        }
    }
    out
}

/// Runs `check` on `cases()` inputs, each the corpus entry mutated (one in
/// eight left as it is, one in sixteen random bytes). A panic is reported
/// with the property, the case and the input as a Rust byte string.
pub fn run(name: &str, corpus: &[&[u8]], dictionary: &[&[u8]], check: impl Fn(&mut Rng, &[u8])) {
    run_cases(name, cases(), corpus, dictionary, check);
}

/// As [`run`], with `count` cases (a property whose case is a request to a
/// server takes a fraction of [`cases`]).
pub fn run_cases(
    name: &str,
    count: usize,
    corpus: &[&[u8]],
    dictionary: &[&[u8]],
    check: impl Fn(&mut Rng, &[u8]),
) {
    let mut rng = Rng::new(
        seed()
            ^ name
                .bytes()
                .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b)),
    );
    for case in 0..count {
        let base = rng.pick(corpus).to_vec();
        let input = match rng.below(16) {
            0 | 1 => base,
            2 => {
                let n = rng.below(64);
                rng.bytes(n)
            }
            _ => mutate(&mut rng, &base, dictionary),
        };
        let mut case_rng = Rng::new(rng.next_u64());
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&mut case_rng, &input))) {
            eprintln!(
                "generative property {name:?} failed at case {case} (GENERATIVE_SEED={}) on input \
                 b\"{}\"",
                seed(),
                input.escape_ascii()
            );
            resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_reproducible_and_mutates() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(
            (0..5).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..5).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
        let mut rng = Rng::new(1);
        let changed = (0..100)
            .filter(|_| mutate(&mut rng, b"{\"a\":1}", &[b"null"]) != b"{\"a\":1}")
            .count();
        assert!(changed > 80, "{changed}");
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn a_failing_property_fails_the_test() {
        run("always fails", &[b"x"], &[], |_, _| panic!("boom"));
    }
}
