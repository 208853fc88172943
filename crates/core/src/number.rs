//! Decimal numbers read from text: payload fields and settings typed by people.
//!
//! # Why not just `str::parse::<f64>`
//!
//! Natively it is exactly that. In the browser the same correctly rounded conversion is
//! JavaScript's `parseFloat`, which is already there: Rust's own parser would add its
//! 10 KB table of powers of five (which gzip cannot shrink) and its code to a web app
//! that has a 250 KB budget. The grammar is checked here first, on both targets, so both
//! accept exactly the same texts: an optional sign, digits with an optional fraction, and
//! an optional exponent. `inf`, `NaN`, hex and surrounding spaces are refused.
//!
//! # The fast path
//!
//! Readings carry short decimals (`27.1`, `60.25`), and the page's in-page stack reads two
//! of them per reading, 100,000 a second at 100,000 devices. Handing each one to
//! `parseFloat` costs a string copied out of wasm memory (`TextDecoder`) and a JS string to
//! collect: 14% of the main thread and much of its garbage in a profile of that fleet. So
//! both targets first try Clinger's fast path: a decimal whose digits, read as an integer
//! `m`, are at most 2^53, with a power of ten `10^e`, |e| <= 22, is `m * 10^e` (or
//! `m / 10^-e`): both operands are exact in an `f64`, so the one IEEE operation rounds
//! correctly. The device model's readings are printed in full (`27.384615384615383`:
//! 17 digits, past 2^53), so a second exact path takes what fits in integers: a mantissa
//! below 2^64 and |e| <= 19 is `m * 10^e` as a `u128` (rounded by the cast, which rounds to
//! nearest, ties to even), or `m / 10^-e` by `u128` division, rounded by hand from the
//! quotient's bits and the remainder. Anything else goes to the full conversion.

/// Parses a decimal number (`27.5`, `-1e3`, `.5`, `5.`), correctly rounded to the nearest
/// `f64`. Overflow gives an infinity, as `str::parse` does; callers that need finite
/// values check [`f64::is_finite`].
pub fn parse_f64(text: &str) -> Option<f64> {
    if !is_decimal(text.as_bytes()) {
        return None;
    }
    fast_path(text.as_bytes()).or_else(|| convert(text))
}

/// Clinger's fast path (see the module doc) for a text [`is_decimal`] accepted, or `None`
/// when it does not apply.
fn fast_path(s: &[u8]) -> Option<f64> {
    const MAX_EXACT: u64 = 1 << 53;
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    let (digits, exponent) = match s.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let mut m: u64 = 0;
    let mut fraction_digits: i32 = 0;
    let mut in_fraction = false;
    for &b in digits {
        if b == b'.' {
            in_fraction = true;
            continue;
        }
        m = m.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        fraction_digits += i32::from(in_fraction);
    }
    let mut e: i32 = match exponent {
        Some(text) => {
            let (negative, text) = match text.split_first() {
                Some((b'-', rest)) => (true, rest),
                Some((b'+', rest)) => (false, rest),
                _ => (false, text),
            };
            // More than 3 digits is out of the fast path's range anyway.
            if text.len() > 3 {
                return None;
            }
            let value = text
                .iter()
                .fold(0_i32, |v, &b| v * 10 + i32::from(b - b'0'));
            if negative { -value } else { value }
        }
        None => 0,
    };
    e -= fraction_digits;
    let magnitude = if m == 0 {
        0.0
    } else if m <= MAX_EXACT && (-22..=22).contains(&e) {
        // 10^k for k <= 22 is exact, and so is every product on the way there.
        let power = (0..e.unsigned_abs()).fold(1.0_f64, |p, _| p * 10.0);
        if e < 0 {
            m as f64 / power
        } else {
            m as f64 * power
        }
    } else if (0..=19).contains(&e) {
        // m < 2^64 and 10^19 < 2^64: the product fits.
        (u128::from(m) * 10_u128.pow(e.unsigned_abs())) as f64
    } else if (-19..0).contains(&e) {
        divide(m, e.unsigned_abs())
    } else {
        return None;
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `m / 10^k` correctly rounded (to nearest, ties to even), for `1 <= m < 2^64` and
/// `1 <= k <= 19`.
fn divide(m: u64, k: u32) -> f64 {
    let d = 10_u128.pow(k);
    // Shifted so its top bit is bit 127: the quotient then has at least 64 bits (d < 2^64),
    // 11 more than a double keeps, and the remainder says whether anything is left below.
    let shift = u128::from(m).leading_zeros();
    let n = u128::from(m) << shift;
    let (q, r) = (n / d, n % d);
    let extra = (128 - q.leading_zeros()) - 53;
    let mut mantissa = (q >> extra) as u64;
    let rest = q & ((1_u128 << extra) - 1);
    let half = 1_u128 << (extra - 1);
    if rest > half || (rest == half && (r != 0 || mantissa & 1 == 1)) {
        mantissa += 1;
    }
    // The value is mantissa * 2^exponent.
    let mut exponent = extra as i32 - shift as i32;
    if mantissa == 1 << 53 {
        mantissa >>= 1;
        exponent += 1;
    }
    // mantissa is in [2^52, 2^53); the value is at least 10^-19, far from subnormal.
    let biased = (exponent + 52 + 1023) as u64;
    f64::from_bits((biased << 52) | (mantissa & ((1 << 52) - 1)))
}

#[cfg(not(target_arch = "wasm32"))]
fn convert(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

#[cfg(target_arch = "wasm32")]
fn convert(text: &str) -> Option<f64> {
    // ECMAScript's StringToNumber rounds correctly up to 20 significant digits (and V8 for
    // any length); the text is a plain decimal by now, so it never returns NaN for it.
    let v = js_sys::Number::parse_float(text);
    (!v.is_nan()).then_some(v)
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`, nothing else.
fn is_decimal(s: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while s.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if matches!(s.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut mantissa = digits(&mut i);
    if s.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_decimal_forms() {
        for (text, want) in [
            ("27.5", 27.5),
            ("-1e3", -1000.0),
            ("+2", 2.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1E-2", 0.01),
            ("0", 0.0),
        ] {
            assert_eq!(parse_f64(text), Some(want), "{text}");
        }
        assert_eq!(parse_f64("1e999"), Some(f64::INFINITY));
    }

    #[test]
    fn refuses_everything_else() {
        for text in [
            "", " 1", "1 ", "+", "-", ".", "e5", "1e", "1e+", "1..2", "1.2.3", "inf", "NaN",
            "infinity", "0x10", "1_000", "1,5", "--1", "١",
        ] {
            assert_eq!(parse_f64(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_fast_path_takes_short_decimals_and_leaves_the_rest() {
        for (text, want) in [
            ("27.1", 27.1),
            ("-60.25", -60.25),
            ("-0", -0.0),
            ("1e22", 1e22),
            ("9007199254740992", 9_007_199_254_740_992.0),
            ("1.5E-3", 0.0015),
        ] {
            let got = fast_path(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), Some(f64::to_bits(want)), "{text}");
        }
        // Past the integer paths: 20 digits, or a power of ten past 10^19.
        for text in ["18446744073709551616", "1e23", "1e-23", "1e0001", "1.5e-24"] {
            assert_eq!(fast_path(text.as_bytes()), None, "{text}");
        }
        // The device model's full-precision readings take the integer paths.
        for text in [
            "27.384615384615383",
            "60.00000000000001",
            "9007199254740993",
            "0.1234567890123456789",
        ] {
            let want = text.parse::<f64>().unwrap().to_bits();
            assert_eq!(
                fast_path(text.as_bytes()).map(f64::to_bits),
                Some(want),
                "{text}"
            );
        }
    }

    // Natively the full conversion *is* `str::parse`, so what this checks is the grammar
    // and the fast path against it: every form Rust prints is accepted, and reads back
    // exactly. The conversion the browser does (parseFloat) is checked against an
    // independent parser in headless Chromium: tests/number_wasm.rs.
    proptest! {
        #[test]
        fn the_fast_path_rounds_like_str_parse(m in 0_u64..(1 << 53), point in 0_usize..17, e in -30_i32..30) {
            let digits = m.to_string();
            let point = point.min(digits.len());
            for text in [
                format!("{}.{}e{e}", &digits[..point], &digits[point..]),
                format!("-{}.{}", &digits[..point], &digits[point..]),
            ] {
                let want = text.parse::<f64>().ok().map(f64::to_bits);
                prop_assert_eq!(parse_f64(&text).map(f64::to_bits), want, "{}", text);
            }
        }
    }

    proptest! {
        #[test]
        fn the_integer_paths_round_like_str_parse(m in any::<u64>(), point in 0_usize..21, e in -25_i32..25) {
            let digits = m.to_string();
            let point = point.min(digits.len());
            for text in [
                format!("{}.{}e{e}", &digits[..point], &digits[point..]),
                format!("{}.{}", &digits[..point], &digits[point..]),
            ] {
                let want = text.parse::<f64>().ok().map(f64::to_bits);
                prop_assert_eq!(parse_f64(&text).map(f64::to_bits), want, "{}", text);
            }
        }

        #[test]
        fn halfway_cases_round_to_even(m in 1_u64..(1 << 53), k in 1_u32..20) {
            // m and a 5 after it, scaled down by 10^k: exact ties and their neighbours,
            // where a rounding mistake shows.
            let text = format!("{m}5e-{k}");
            let want = text.parse::<f64>().ok().map(f64::to_bits);
            prop_assert_eq!(parse_f64(&text).map(f64::to_bits), want, "{}", text);
        }

        #[test]
        fn the_grammar_accepts_every_printed_form(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            for text in [format!("{v}"), format!("{v:e}")] {
                prop_assert_eq!(parse_f64(&text).map(f64::to_bits), Some(v.to_bits()), "{}", text);
            }
            let fixed = format!("{v:.3}");
            prop_assert!(parse_f64(&fixed).is_some(), "{} refused", fixed);
        }
    }
}
