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

/// Parses a decimal number (`27.5`, `-1e3`, `.5`, `5.`), correctly rounded to the nearest
/// `f64`. Overflow gives an infinity, as `str::parse` does; callers that need finite
/// values check [`f64::is_finite`].
pub fn parse_f64(text: &str) -> Option<f64> {
    if !is_decimal(text.as_bytes()) {
        return None;
    }
    convert(text)
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

    // Natively the conversion *is* `str::parse`, so what this checks is the grammar: it must
    // accept every form Rust prints, and the shortest forms must read back exactly. The
    // conversion the browser does (parseFloat) is checked against an independent parser
    // in headless Chromium: tests/number_wasm.rs.
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
