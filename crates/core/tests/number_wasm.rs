//! `fleet_core::number` as the browser runs it: on wasm32, what the exact integer paths do
//! not take goes to the browser's `parseFloat`, so this runs in headless Chromium
//! (wasm-bindgen-test, started by `scripts/wasm-test.sh`), over texts that take both.
//!
//! The reference is Rust's own decimal-to-float conversion (`core`'s dec2flt), compiled
//! into this test only: an implementation independent of V8's and of the integer paths,
//! all claiming correct rounding. The native property tests check the integer paths
//! against `str::parse` too, but natively the rest *is* `str::parse`.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use fleet_core::number::parse_f64;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The reference: Rust's parser, for texts the grammar accepts.
fn reference(text: &str) -> f64 {
    text.parse::<f64>().unwrap()
}

/// Bit-exact equality (so `-0.0` differs from `0.0`, and infinities compare).
fn same(text: &str) {
    let got = parse_f64(text).unwrap_or_else(|| panic!("{text:?} refused"));
    let want = reference(text);
    assert_eq!(
        got.to_bits(),
        want.to_bits(),
        "{text:?}: parseFloat gave {got:e}, Rust's parser {want:e}"
    );
}

#[wasm_bindgen_test]
fn hard_cases_round_like_rusts_parser() {
    for text in [
        "0",
        "-0",
        "+0",
        "0.0",
        "-0.0",
        ".5",
        "5.",
        "27.5",
        "-1e3",
        "1E-3",
        "+7e+2",
        // Around the edges of the format.
        "1.7976931348623157e308", // f64::MAX
        "1.7976931348623158e308", // rounds to MAX
        "1.7976931348623159e308", // overflows to infinity
        "1e309",
        "-1e309",
        "2.2250738585072014e-308", // smallest normal
        "2.2250738585072011e-308", // the subnormal that hung PHP and Java
        "4.9406564584124654e-324", // smallest subnormal
        "2.4703282292062327e-324", // just under half of it: 0
        "2.4703282292062328e-324", // just over half of it: the smallest subnormal
        "1e-400",
        // Halfway cases between two doubles, and near them.
        "9007199254740993", // 2^53 + 1: ties to even
        "9007199254740995",
        "9007199254740993.0000000000000000000000000001",
        "0.1",
        "0.2",
        "0.3",
        "0.30000000000000004",
        "123456789012345678901234567890",
        "1.00000000000000011102230246251565404236316680908203125", // 1 + 2^-53 exactly
        "1.00000000000000011102230246251565404236316680908203126",
        "7.2057594037927933e16",
        "000000000000000000000000000000001.5",
        "1.5e000000000000000000000000000000",
    ] {
        same(text);
    }
}

#[wasm_bindgen_test]
fn the_grammar_refuses_the_same_texts_as_natively() {
    for text in [
        "", " 1", "1 ", "+", "-", ".", "e5", "1e", "1e+", "--1", "+-1", "1..2", "0x10", "inf",
        "-inf", "Infinity", "NaN", "nan", "1_000", "1,5", "١", "1e5.5", "27.5°",
    ] {
        assert_eq!(parse_f64(text), None, "{text:?} should be refused");
    }
}

/// A small deterministic generator (xorshift64*): the same texts on every run, and no
/// dependency that must build for wasm32.
struct Texts(u64);

impl Texts {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A decimal of 1–40 significant digits, a fraction point anywhere, and an exponent
    /// from -360 to 340: every region of the format, subnormals and overflow included.
    fn decimal(&mut self) -> String {
        let mut s = String::new();
        if self.below(2) == 0 {
            s.push('-');
        }
        let digits = 1 + self.below(40) as usize;
        let point = self.below(digits as u64 + 1) as usize;
        for k in 0..digits {
            if k == point {
                s.push('.');
            }
            s.push(char::from(b'0' + self.below(10) as u8));
        }
        if self.below(4) != 0 {
            let exp = self.below(701) as i64 - 360;
            s.push_str(&format!("e{exp}"));
        }
        s
    }
}

#[wasm_bindgen_test]
fn random_decimals_round_like_rusts_parser() {
    let mut texts = Texts(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        same(&texts.decimal());
    }
}

#[wasm_bindgen_test]
fn every_double_printed_shortest_reads_back_exactly() {
    // Rust prints the shortest text that reads back as the same double; parseFloat must
    // read it back too, for doubles drawn from all exponents.
    let mut texts = Texts(0x0123_4567_89ab_cdef);
    for _ in 0..20_000 {
        let x = f64::from_bits(texts.next());
        if !x.is_finite() {
            continue;
        }
        let text = format!("{x:e}");
        let got = parse_f64(&text).unwrap_or_else(|| panic!("{text:?} refused"));
        assert_eq!(got.to_bits(), x.to_bits(), "{text:?}");
    }
}
