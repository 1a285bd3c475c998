//! Compact number formatting for verdict summaries, where `0.30000000000000004` helps
//! nobody. Annotations meant for machines should keep full precision (`{}`). Pure: never
//! imports anything else of the SDK.

/// Significant digits [`format_value`] keeps.
const SIGNIFICANT: i32 = 6;

/// `10^i` for `i` in `0..=15`, exact in f64.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Formats `x` with up to 6 significant digits, without trailing zeros, like C's `%g`:
/// `0.30000000000000004` → `0.3`, `1234.5678` → `1234.57`, `1.5e-7` → `1.5e-7`,
/// `123456789` → `123456789` (integer digits are never dropped below 1e15).
/// Infinities print as `+Inf`/`-Inf` and NaN as `NaN`, as Prometheus does.
///
/// Summaries are formatted once per series per evaluation, so the common range
/// (1e-4 to 1e15) takes a fast path: scale, round to an integer, print its digits.
/// Ties round to even as `format!` does; the scaling multiplication can itself round,
/// so a value within an ulp of a tie may round the other way.
pub fn format_value(x: f64) -> String {
    let mut out = String::with_capacity(24);
    push_value(&mut out, x);
    out
}

/// Appends `x` formatted as by [`format_value`] to `out`, without allocating a
/// temporary string: handy when building a summary piece by piece.
pub fn push_value(out: &mut String, x: f64) {
    if x.is_nan() {
        return out.push_str("NaN");
    }
    if x.is_infinite() {
        return out.push_str(if x > 0.0 { "+Inf" } else { "-Inf" });
    }
    if x == 0.0 {
        return out.push('0');
    }
    let magnitude = x.abs();
    if (1e-4..1e15).contains(&magnitude) {
        // Decimal exponent without a log10 call: the largest power of ten ≤ magnitude.
        let exponent = if magnitude >= 1.0 {
            POW10.iter().rposition(|p| *p <= magnitude).unwrap_or(0) as i32
        } else {
            -(POW10[1..=4]
                .iter()
                .position(|p| magnitude * p >= 1.0)
                .unwrap_or(3) as i32
                + 1)
        };
        let decimals = (SIGNIFICANT - 1 - exponent).clamp(0, 9) as usize;
        let scaled = (magnitude * POW10[decimals]).round_ties_even() as u64;
        if x < 0.0 {
            out.push('-');
        }
        return push_fixed(out, scaled, decimals);
    }
    let text = format!("{x:.prec$e}", prec = (SIGNIFICANT - 1) as usize);
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            out.push_str(mantissa.trim_end_matches('0').trim_end_matches('.'));
            out.push('e');
            out.push_str(exponent);
        }
        None => out.push_str(&text),
    }
}

/// Appends `scaled / 10^decimals` in decimal, without trailing fractional zeros.
fn push_fixed(out: &mut String, scaled: u64, decimals: usize) {
    let mut digits = [0u8; 20];
    let mut n = scaled;
    let mut len = 0;
    while n > 0 || len <= decimals {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    // `digits` is little-endian; the fractional part is its `decimals` lowest digits.
    let fraction = &digits[..decimals];
    let kept = fraction.iter().position(|d| *d != b'0').unwrap_or(decimals);
    for d in digits[decimals..len].iter().rev() {
        out.push(char::from(*d));
    }
    if kept < decimals {
        out.push('.');
        for d in fraction[kept..].iter().rev() {
            out.push(char::from(*d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_percent_g() {
        for (x, expected) in [
            (0.1 + 0.2, "0.3"),
            (0.25, "0.25"),
            (1234.5678, "1234.57"),
            (-42.0, "-42"),
            (123456789.0, "123456789"),
            (0.000123456789, "0.000123457"),
            (1.5e-7, "1.5e-7"),
            (2.5e20, "2.5e20"),
            (0.0, "0"),
            (-0.0, "0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (999.9999999, "1000"),
            (0.07, "0.07"),
            (0.0001, "0.0001"),
            (0.00009999, "9.999e-5"),
            (1.0, "1"),
            (10.0, "10"),
            (100000.0, "100000"),
            (1234567.0, "1234567"),
            (999999999999999.0, "999999999999999"),
            (1e15, "1e15"),
            (-0.5, "-0.5"),
            (3.27395, "3.27395"),
            (2.1380899352993947, "2.13809"),
            (0.0547722557505166, "0.0547723"),
            (12.990381056766577, "12.9904"),
        ] {
            assert_eq!(format_value(x), expected, "{x}");
        }
        let mut line = String::from("z=");
        push_value(&mut line, -1.0 / 3.0);
        push_value(&mut line, 2e-9);
        assert_eq!(line, "z=-0.3333332e-9");
    }

    #[test]
    fn fast_path_agrees_with_exact_formatting() {
        // Compare with std's correctly rounded formatting over a spread of magnitudes;
        // halfway cases aside, both must print the same digits.
        let mut x: f64 = 1.234567891e-4;
        while x < 1e15 {
            for v in [x, -x, x * 1.7, x * 3.3333] {
                if v.abs() >= 1e15 {
                    continue;
                }
                let exponent = v.abs().log10().floor() as i32;
                let decimals = (5 - exponent).max(0) as usize;
                let exact = format!("{v:.decimals$}");
                let exact = if exact.contains('.') {
                    exact.trim_end_matches('0').trim_end_matches('.').to_owned()
                } else {
                    exact
                };
                assert_eq!(format_value(v), exact, "{v}");
            }
            x *= 7.77;
        }
    }
}
