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
//! correctly. Anything else goes to the full conversion.

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
        if m > MAX_EXACT {
            return None;
        }
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
    if !(-22..=22).contains(&e) {
        return None;
    }
    // 10^k for k <= 22 is exact, and so is every product on the way there.
    let power = (0..e.unsigned_abs()).fold(1.0_f64, |p, _| p * 10.0);
    let magnitude = if e < 0 {
        m as f64 / power
    } else {
        m as f64 * power
    };
    Some(if negative { -magnitude } else { magnitude })
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
        // 2^53 + 1 is not exact; 10^23 is not; a long exponent is out of range.
        for text in [
            "9007199254740993",
            "1e23",
            "1e-23",
            "1e0001",
            "0.1234567890123456789",
        ] {
            assert_eq!(fast_path(text.as_bytes()), None, "{text}");
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
        fn the_grammar_accepts_every_printed_form(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            for text in [format!("{v}"), format!("{v:e}")] {
                prop_assert_eq!(parse_f64(&text).map(f64::to_bits), Some(v.to_bits()), "{}", text);
            }
            let fixed = format!("{v:.3}");
            prop_assert!(parse_f64(&fixed).is_some(), "{} refused", fixed);
        }
    }
}
