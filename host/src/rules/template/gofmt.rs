//! Go's float formatting, as Prometheus templates print numbers: `%v`
//! (`strconv.FormatFloat(f, 'g', -1, 64)`: shortest round-trip digits,
//! exponent form below 1e-4 and from 1e6) and `%.Ng` (N significant digits,
//! trailing zeros dropped). Owns nothing else; Rust's own `{}` differs from
//! both (`1e21` prints every digit, `1.5e-7` prints `0.00000015`).
//!
//! Digits come from Rust's exact formatter (`{:e}`, `{:.*e}`, both
//! correctly rounded, ties to even as Go's), and are laid out with the
//! rules of Go's `strconv/ftoa.go` (`%e` vs `%f` choice, `fmtE`, `fmtF`).

/// `fmt.Sprint(f)` / `{{ f }}` in Go.
pub fn format_v(f: f64) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let raw = format!("{:e}", f.abs());
    lay_out(f.is_sign_negative(), &raw, None)
}

/// `fmt.Sprintf("%.{prec}g", f)` in Go. `prec` 0 is treated as 1, as Go does.
pub fn format_g(f: f64, prec: usize) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let prec = prec.max(1);
    let raw = format!("{:.*e}", prec - 1, f.abs());
    lay_out(f.is_sign_negative(), &raw, Some(prec))
}

/// Go's spelling of the non-finite values and zero.
fn special(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else if f == 0.0 {
        Some(if f.is_sign_negative() { "-0" } else { "0" }.into())
    } else {
        None
    }
}

/// `raw` is Rust's `{:e}` of a finite non-zero magnitude (`1.2345e-7`).
/// `prec` is `None` for the shortest representation.
fn lay_out(negative: bool, raw: &str, prec: Option<usize>) -> String {
    let (mantissa, exp) = raw.split_once('e').unwrap_or((raw, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    // Go's decimal drops trailing zeros: `nd` counts significant digits.
    let nd = digits.iter().rposition(|&d| d != b'0').map_or(1, |i| i + 1);
    let digits = &digits[..nd];
    let nd = nd as i32;
    let dp = exp + 1;
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let p = p as i32;
            if p > nd && nd >= dp { nd } else { p }
        }
    };
    let mut out = String::with_capacity(nd as usize + 8);
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push(digits[0] as char);
        if nd > 1 {
            out.push('.');
            out.extend(digits[1..].iter().map(|&d| d as char));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else {
        let digit = |i: i32| -> char {
            if (0..nd).contains(&i) {
                digits[i as usize] as char
            } else {
                '0'
            }
        };
        if dp > 0 {
            out.extend((0..dp).map(digit));
        } else {
            out.push('0');
        }
        let decimals = (nd - dp).max(0);
        if decimals > 0 {
            out.push('.');
            out.extend((0..decimals).map(|i| digit(dp + i)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_matches_go_fmt_sprint() {
        // Expected strings are Go's `fmt.Sprint(float64(x))`.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (3.0, "3"),
            (0.1, "0.1"),
            (0.25, "0.25"),
            (-2.5, "-2.5"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (9.223372036854776e18, "9.223372036854776e+18"),
            (-9.223372036854776e18, "-9.223372036854776e+18"),
            (1.8446744073709552e19, "1.8446744073709552e+19"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (5e-324, "5e-324"),
        ];
        for &(x, want) in cases {
            assert_eq!(format_v(x), want, "format_v({x:e})");
        }
    }

    #[test]
    fn g_with_precision_matches_go() {
        // Expected strings are Go's `fmt.Sprintf("%.4g", x)` (and `%.2g`).
        let cases: &[(f64, usize, &str)] = &[
            (0.0, 4, "0"),
            (1.0, 4, "1"),
            (1.234567, 4, "1.235"),
            (1234.0, 4, "1234"),
            (12345.0, 4, "1.234e+04"),
            (123456.0, 4, "1.235e+05"),
            (1000.0, 4, "1000"),
            (100.0, 4, "100"),
            (9.9996, 4, "10"),
            (12.345, 4, "12.35"),
            (0.00001234, 4, "1.234e-05"),
            (123456700.0, 4, "1.235e+08"),
            (1.5, 4, "1.5"),
            (10.0, 2, "10"),
            (100.0, 2, "1e+02"),
            (f64::INFINITY, 4, "+Inf"),
            (f64::NEG_INFINITY, 4, "-Inf"),
            (f64::NAN, 4, "NaN"),
        ];
        for &(x, p, want) in cases {
            assert_eq!(format_g(x, p), want, "format_g({x:e}, {p})");
        }
    }
}
