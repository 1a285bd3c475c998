//! A strict JSON reader over a byte slice, just big enough for the push
//! formats: it reads one token at a time where the caller expects it, so a
//! schema-driven parser needs no intermediate tree. Strings without escapes
//! are borrowed from the input. Every failure records the byte offset; the
//! line and column are computed only when an error is reported.

use std::borrow::Cow;

/// A refused request, before it becomes an `IngestError`.
#[derive(Debug)]
pub(super) struct Fail {
    /// Set by the innermost schema level that knows where it is.
    pub(super) field: Option<String>,
    pub(super) message: String,
    /// Byte offset of the offending token.
    pub(super) pos: usize,
}

/// Boxed so the `Result`s on the hot path stay small.
pub(super) type PResult<T> = Result<T, Box<Fail>>;

/// Attaches a field path to an error that has none yet.
pub(super) trait At {
    fn at(self, path: impl FnOnce() -> String) -> Self;
}

impl<T> At for PResult<T> {
    #[inline]
    fn at(self, path: impl FnOnce() -> String) -> Self {
        match self {
            Ok(v) => Ok(v),
            Err(e) => Err(with_field(e, path)),
        }
    }
}

#[cold]
fn with_field(mut e: Box<Fail>, path: impl FnOnce() -> String) -> Box<Fail> {
    if e.field.is_none() {
        e.field = Some(path());
    }
    e
}

/// Whether any of eight bytes is `"`, `\\` or a control character (SWAR
/// zero-byte tests; exact when it answers `false`).
#[inline]
fn has_special_byte(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    (zero_byte(quote) | zero_byte(backslash) | below_space) != 0
}

/// Line and column (1-based, column in bytes) of a byte offset.
pub(super) fn line_column(buf: &[u8], pos: usize) -> (usize, usize) {
    let before = &buf[..pos.min(buf.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// A number as scanned: where it is and its decimal digits, so the common
/// cases convert without re-reading the text.
#[derive(Default)]
pub(super) struct Number {
    start: usize,
    end: usize,
    negative: bool,
    /// The first `EXACT_DIGITS` significant digits.
    mantissa: u64,
    /// Digits seen (leading zeros of a fraction included).
    digits: usize,
    /// Power of ten to apply to `mantissa` (fraction and exponent), valid
    /// while `digits <= EXACT_DIGITS`.
    exp10: i32,
    /// No fraction and no exponent.
    pub(super) integer: bool,
}

impl Number {
    /// Digits that always fit a `u64`.
    const EXACT_DIGITS: usize = 19;

    /// Consumes runs of eight digits at `buf[p..]` at once (SWAR, as in
    /// fast_float) while they fit the exact mantissa; returns the new `p`.
    #[inline]
    fn push_eight_digit_runs(&mut self, buf: &[u8], mut p: usize) -> usize {
        while self.digits + 8 <= Self::EXACT_DIGITS {
            let Some(chunk) = buf.get(p..p + 8) else {
                break;
            };
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            let chunk = u64::from_le_bytes(bytes);
            // Every byte in b'0'..=b'9'?
            let all_digits = ((chunk & 0xf0f0_f0f0_f0f0_f0f0)
                | (((chunk.wrapping_add(0x0606_0606_0606_0606)) & 0xf0f0_f0f0_f0f0_f0f0) >> 4))
                == 0x3333_3333_3333_3333;
            if !all_digits {
                break;
            }
            let mut v = chunk - 0x3030_3030_3030_3030;
            v = v.wrapping_mul(10) + (v >> 8);
            v = ((v & 0x0000_00ff_0000_00ff).wrapping_mul(0x000f_4240_0000_0064)
                + ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(0x0000_2710_0000_0001))
                >> 32;
            self.mantissa = self.mantissa * 100_000_000 + v;
            self.digits += 8;
            p += 8;
        }
        p
    }

    #[inline]
    fn push_digit(&mut self, d: u8) {
        self.digits += 1;
        if self.digits <= Self::EXACT_DIGITS {
            self.mantissa = self.mantissa * 10 + u64::from(d - b'0');
        }
    }
}

pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    /// `buf` as text when all of it is valid UTF-8 (checked once, up
    /// front): strings are then sliced from it without checking each.
    text: Option<&'a str>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor {
            buf,
            text: std::str::from_utf8(buf).ok(),
            pos: 0,
        }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// An error at the current position.
    #[cold]
    pub(super) fn fail(&self, message: impl Into<String>) -> Box<Fail> {
        Box::new(Fail {
            field: None,
            message: message.into(),
            pos: self.pos,
        })
    }

    /// An error at the current position, for a given field.
    #[cold]
    pub(super) fn fail_at(&self, field: String, message: impl Into<String>) -> Box<Fail> {
        Box::new(Fail {
            field: Some(field),
            message: message.into(),
            pos: self.pos,
        })
    }

    /// "expected {what}, found {next token}".
    #[cold]
    pub(super) fn unexpected(&mut self, what: &str) -> Box<Fail> {
        self.peek();
        self.fail(format!("expected {what}, found {}", self.describe_next()))
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.buf.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Consumes `byte` if it is the next token.
    #[inline]
    pub(super) fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Whether only whitespace is left.
    pub(super) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// What comes next, for error messages.
    pub(super) fn describe_next(&self) -> String {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        let at = rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
            .unwrap_or(rest.len());
        let rest = &rest[at..];
        match rest.first().copied() {
            None => "end of input".into(),
            Some(b'"') => "a string".into(),
            Some(b'{') => "an object".into(),
            Some(b'[') => "an array".into(),
            Some(b'-' | b'0'..=b'9') => "a number".into(),
            Some(b't') if rest.starts_with(b"true") => "a boolean".into(),
            Some(b'f') if rest.starts_with(b"false") => "a boolean".into(),
            Some(b'n') if rest.starts_with(b"null") => "null".into(),
            Some(b) if b.is_ascii_graphic() => format!("`{}`", b as char),
            Some(b) => format!("byte 0x{b:02x}"),
        }
    }

    /// After a member of an object or array: consumes `,` and returns `true`
    /// if another member follows, consumes `close` and returns `false` at the
    /// end.
    #[inline]
    pub(super) fn next_member(&mut self, close: u8) -> PResult<bool> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                if self.peek() == Some(close) {
                    return Err(self.fail(format!("trailing comma before `{}`", close as char)));
                }
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.unexpected(&format!("`,` or `{}`", close as char))),
        }
    }

    /// Reads an object key and its `:`.
    #[inline]
    pub(super) fn key(&mut self) -> PResult<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("a field name"));
        }
        let key = self.string()?;
        if !self.eat(b':') {
            return Err(self.unexpected("`:`"));
        }
        Ok(key)
    }

    /// Reads a string at the next token, which must be `"`.
    pub(super) fn string(&mut self) -> PResult<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("a string"));
        }
        self.pos += 1;
        let start = self.pos;
        // Fast path: no escapes, borrowed. Skip eight plain bytes at a time.
        while let Some(chunk) = self.buf.get(self.pos..self.pos + 8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            if has_special_byte(u64::from_le_bytes(bytes)) {
                break;
            }
            self.pos += 8;
        }
        while let Some(&b) = self.buf.get(self.pos) {
            match b {
                b'"' => {
                    let s = self.utf8(start, self.pos)?;
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                b'\\' => return self.escaped_string(start).map(Cow::Owned),
                0..=0x1f => return Err(self.fail("control character in string (escape it)")),
                _ => self.pos += 1,
            }
        }
        Err(self.fail("unterminated string: found end of input"))
    }

    /// `buf[start..end]` as text; both ends sit next to ASCII bytes (quotes,
    /// escapes), so they are char boundaries whenever `buf` is valid UTF-8.
    #[inline]
    fn utf8(&self, start: usize, end: usize) -> PResult<&'a str> {
        if let Some(s) = self.text.and_then(|text| text.get(start..end)) {
            return Ok(s);
        }
        std::str::from_utf8(&self.buf[start..end]).map_err(|e| {
            Box::new(Fail {
                field: None,
                message: "invalid UTF-8 in string".into(),
                pos: start + e.valid_up_to(),
            })
        })
    }

    #[cold]
    fn escaped_string(&mut self, start: usize) -> PResult<String> {
        let mut out = String::from(self.utf8(start, self.pos)?);
        let mut run = self.pos;
        while let Some(&b) = self.buf.get(self.pos) {
            match b {
                b'"' => {
                    out.push_str(self.utf8(run, self.pos)?);
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(self.utf8(run, self.pos)?);
                    self.pos += 1;
                    let Some(&e) = self.buf.get(self.pos) else {
                        break;
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => {
                            self.pos -= 1;
                            return Err(self.fail("invalid escape in string"));
                        }
                    }
                    run = self.pos;
                }
                0..=0x1f => return Err(self.fail("control character in string (escape it)")),
                _ => self.pos += 1,
            }
        }
        Err(self.fail("unterminated string: found end of input"))
    }

    /// After `\u`: four hex digits, and a second `\uXXXX` for a surrogate pair.
    fn unicode_escape(&mut self) -> PResult<char> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if self.buf.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.fail("lone leading surrogate in \\u escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.fail("invalid surrogate pair in \\u escape"));
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.fail("lone trailing surrogate in \\u escape")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.fail("invalid \\u escape"))
    }

    fn hex4(&mut self) -> PResult<u32> {
        let digits = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.fail("invalid \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let x = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.fail("invalid \\u escape"))?;
            v = v * 16 + x;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Reads a JSON number at the next token, accumulating its digits as it
    /// scans so the common cases need no second pass. `what` names the
    /// expected value for the error when the next token is not a number.
    #[inline]
    pub(super) fn number(&mut self, what: &str) -> PResult<Number> {
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return Err(self.unexpected(what));
        }
        let buf = self.buf;
        let start = self.pos;
        let mut p = start;
        let negative = buf[p] == b'-';
        if negative {
            p += 1;
        }
        let mut n = Number {
            start,
            end: start,
            negative,
            mantissa: 0,
            digits: 0,
            exp10: 0,
            integer: true,
        };
        match buf.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                p = n.push_eight_digit_runs(buf, p);
                while let Some(&d @ b'0'..=b'9') = buf.get(p) {
                    n.push_digit(d);
                    p += 1;
                }
            }
            _ => {
                self.pos = p;
                return Err(self.fail("invalid number"));
            }
        }
        if buf.get(p) == Some(&b'.') {
            n.integer = false;
            p += 1;
            let first = p;
            p = n.push_eight_digit_runs(buf, p);
            n.exp10 -= (p - first) as i32;
            while let Some(&d @ b'0'..=b'9') = buf.get(p) {
                n.push_digit(d);
                n.exp10 -= 1;
                p += 1;
            }
            if p == first {
                self.pos = p;
                return Err(self.fail("invalid number: digits expected after `.`"));
            }
        }
        if matches!(buf.get(p), Some(b'e' | b'E')) {
            n.integer = false;
            p += 1;
            let negative_exp = buf.get(p) == Some(&b'-');
            if matches!(buf.get(p), Some(b'+' | b'-')) {
                p += 1;
            }
            let first = p;
            let mut exp: i32 = 0;
            while let Some(&d @ b'0'..=b'9') = buf.get(p) {
                // Clamped: beyond this the value is 0 or infinite anyway.
                exp = (exp * 10 + i32::from(d - b'0')).min(100_000);
                p += 1;
            }
            if p == first {
                self.pos = p;
                return Err(self.fail("invalid number: digits expected in exponent"));
            }
            n.exp10 += if negative_exp { -exp } else { exp };
        }
        self.pos = p;
        n.end = p;
        Ok(n)
    }

    /// The common sample shape `[1763780000000,0.125]` (no whitespace, a
    /// plain non-negative integer timestamp, a plain decimal value that
    /// converts exactly) read in one tight pass. Anything else returns `None`
    /// without moving, and the caller takes the general path, which also
    /// produces the errors.
    #[inline]
    pub(super) fn compact_sample(&mut self) -> Option<(i64, f64)> {
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        let b = self.buf;
        let mut p = self.pos;
        if b.get(p) != Some(&b'[') || !matches!(b.get(p + 1), Some(b'1'..=b'9')) {
            return None;
        }
        p += 1;
        // Timestamp: at most 18 digits, so no overflow.
        let mut n = Number::default();
        let start = p;
        p = n.push_eight_digit_runs(b, p);
        while let Some(&d @ b'0'..=b'9') = b.get(p) {
            n.push_digit(d);
            p += 1;
        }
        if p - start > 18 || b.get(p) != Some(&b',') {
            return None;
        }
        let t = n.mantissa as i64;
        p += 1;
        // Value: -?(0|[1-9][0-9]*)(\.[0-9]+)?
        let value_start = p;
        let negative = b.get(p) == Some(&b'-');
        if negative {
            p += 1;
        }
        let mut n = Number::default();
        match b.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                p = n.push_eight_digit_runs(b, p);
                while let Some(&d @ b'0'..=b'9') = b.get(p) {
                    n.push_digit(d);
                    p += 1;
                }
            }
            _ => return None,
        }
        let mut frac_digits = 0;
        if b.get(p) == Some(&b'.') {
            p += 1;
            let first = p;
            p = n.push_eight_digit_runs(b, p);
            while let Some(&d @ b'0'..=b'9') = b.get(p) {
                n.push_digit(d);
                p += 1;
            }
            frac_digits = p - first;
            if frac_digits == 0 {
                return None;
            }
        }
        if b.get(p) != Some(&b']') {
            return None;
        }
        let v = if n.digits <= Number::EXACT_DIGITS && n.mantissa <= 1 << 53 && frac_digits <= 22 {
            // Clinger's fast path, as in `float`.
            let v = n.mantissa as f64 / POW10[frac_digits];
            if negative { -v } else { v }
        } else {
            // Too many digits for an exact mantissa (e.g. `0.10170000000000001`,
            // as most JSON encoders write computed floats): let the standard
            // library round it correctly.
            let text = self.text.and_then(|text| text.get(value_start..p))?;
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => return None,
            }
        };
        self.pos = p + 1;
        Some((t, v))
    }

    /// The text of a number read by [`Cursor::number`].
    pub(super) fn text(&self, n: &Number) -> &'a str {
        // Only ASCII digits, signs, `.` and `e` were consumed.
        std::str::from_utf8(&self.buf[n.start..n.end]).unwrap_or("?")
    }

    /// A number as `i64`, if it is an integer in range.
    pub(super) fn integer(&self, n: &Number) -> Option<i64> {
        if !n.integer {
            return None;
        }
        if n.digits > Number::EXACT_DIGITS {
            return self.text(n).parse().ok();
        }
        if n.negative {
            0i64.checked_sub_unsigned(n.mantissa)
        } else {
            i64::try_from(n.mantissa).ok()
        }
    }

    /// A number as `f64`, correctly rounded; infinite when out of range.
    #[inline]
    pub(super) fn float(&self, n: &Number) -> f64 {
        // Clinger's fast path: an exact mantissa times or divided by an exact
        // power of ten is one correctly rounded IEEE operation.
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        if n.digits <= Number::EXACT_DIGITS && n.mantissa <= 1 << 53 && n.exp10.unsigned_abs() <= 22
        {
            let m = n.mantissa as f64;
            let v = if n.exp10 < 0 {
                m / POW10[n.exp10.unsigned_abs() as usize]
            } else {
                m * POW10[n.exp10 as usize]
            };
            return if n.negative { -v } else { v };
        }
        self.text(n).parse().unwrap_or(f64::NAN)
    }

    /// Moves back to `pos` (to point an error at a token already read).
    pub(super) fn rewind(&mut self, pos: usize) {
        self.pos = pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(json: &str) -> Result<String, String> {
        let mut c = Cursor::new(json.as_bytes());
        c.string().map(|s| s.into_owned()).map_err(|e| e.message)
    }

    fn number(json: &str) -> Result<(String, bool), String> {
        let mut c = Cursor::new(json.as_bytes());
        c.number("a number")
            .map(|n| (c.text(&n).to_owned(), n.integer))
            .map_err(|e| e.message)
    }

    fn float(json: &str) -> f64 {
        let mut c = Cursor::new(json.as_bytes());
        c.number("a number").map(|n| c.float(&n)).unwrap_or(-999.0)
    }

    fn integer(json: &str) -> Option<i64> {
        let mut c = Cursor::new(json.as_bytes());
        c.number("a number").ok().and_then(|n| c.integer(&n))
    }

    #[test]
    fn number_values_match_std() {
        let cases = [
            "0",
            "-0",
            "0.1",
            "0.12",
            "1763780000000",
            "-2.5e-3",
            "1e22",
            "1e23",
            "9007199254740993",
            "123456789012345678901234567890",
            "0.000000000000000000000000001",
            "1.7976931348623157e308",
            "2.2250738585072014e-308",
            "5e-324",
            "4.35",
            "0.30000000000000004",
            "123.456e-10",
            "12345678",
            "123456789",
            "1234567890123456789",
            "12345678901234567890",
            "0.10170000000000001",
            "0.1234567812345678",
            "98765432.12345678",
            "1.00000000000000000000000001",
            "10000000000000000",
        ];
        for text in cases {
            let expected: f64 = text.parse().unwrap_or(f64::NAN);
            assert_eq!(float(text).to_bits(), expected.to_bits(), "{text}");
        }
        assert!(float("1e400").is_infinite());
        assert_eq!(integer("1763780000000"), Some(1_763_780_000_000));
        assert_eq!(integer("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(integer("9223372036854775807"), Some(i64::MAX));
        assert_eq!(integer("9223372036854775808"), None);
        assert_eq!(integer("99999999999999999999"), None);
        assert_eq!(integer("1.0"), None);
        assert_eq!(integer("1e3"), None);
    }

    #[test]
    fn special_bytes() {
        let word = |b: &[u8; 8]| has_special_byte(u64::from_le_bytes(*b));
        assert!(!word(b"abcdefgh"));
        assert!(!word(b"\xc3\xa9 ~!#$%"));
        for i in 0..8 {
            for special in [b'"', b'\\', b'\n', 0x00, 0x1f] {
                let mut b = *b"abcdefgh";
                b[i] = special;
                assert!(word(&b), "{b:?}");
            }
        }
    }

    #[test]
    fn long_strings_and_invalid_utf8_body() {
        assert_eq!(
            string(r#""0123456789abcdefghij\"x""#),
            Ok("0123456789abcdefghij\"x".into())
        );
        assert_eq!(
            string(r#""0123456789abcdefghijklmnopqrstuvwxyz""#),
            Ok("0123456789abcdefghijklmnopqrstuvwxyz".into())
        );
        assert!(string("\"0123456789abcdefghij\tk\"").is_err());
        // Invalid UTF-8 elsewhere in the body: strings are checked one by one.
        let mut c = Cursor::new(b"\"fine\" \"bad\xff\"");
        assert_eq!(c.string().ok().as_deref(), Some("fine"));
        assert!(c.string().is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(string(r#""plain""#), Ok("plain".into()));
        assert_eq!(
            string(r#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#),
            Ok("a\"b\\c/d\n\té😀".into())
        );
        assert_eq!(string("\"héllo\""), Ok("héllo".into()));
        assert!(string(r#""\ud83d""#).is_err());
        assert!(string(r#""\ude00""#).is_err());
        assert!(string(r#""\x""#).is_err());
        assert!(string(r#""\u12""#).is_err());
        assert!(string("\"a\nb\"").is_err());
        assert!(string("\"open").is_err());
        let mut c = Cursor::new(b"\"\xff\"");
        assert!(c.string().is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(number("0"), Ok(("0".into(), true)));
        assert_eq!(number("-12,"), Ok(("-12".into(), true)));
        assert_eq!(number("1.5e-3]"), Ok(("1.5e-3".into(), false)));
        assert_eq!(number("2E+10"), Ok(("2E+10".into(), false)));
        for bad in ["-", "1.", ".5", "1e", "1e+", "-x"] {
            assert!(number(bad).is_err(), "{bad}");
        }
        // "01" reads as 0 and leaves "1" for the caller to reject.
        let mut c = Cursor::new(b"01");
        assert_eq!(c.number("n").map(|n| c.text(&n)).ok(), Some("0"));
        assert!(c.next_member(b']').is_err());
        assert!(number("+1").is_err());
    }

    #[test]
    fn compact_samples_match_the_general_path() {
        let compact = |json: &str| Cursor::new(json.as_bytes()).compact_sample();
        assert_eq!(
            compact("[1763780000000,0.125]"),
            Some((1_763_780_000_000, 0.125))
        );
        assert_eq!(compact("[1,-2]"), Some((1, -2.0)));
        assert_eq!(compact("[10,0]"), Some((10, 0.0)));
        assert_eq!(
            compact("[10,12345678.1234567]"),
            Some((10, 12345678.1234567))
        );
        for text in [
            "0.1",
            "0.10170000000000001",
            "4.35",
            "123456789.0001",
            "0.0000001",
            "9007199254740993",
            "-0.30000000000000004",
            "1234567890123456789012.5",
            "-0",
        ] {
            let expected: f64 = text.parse().unwrap_or(f64::NAN);
            let got = compact(&format!("[5,{text}]")).map(|(_, v)| v.to_bits());
            assert_eq!(got, Some(expected.to_bits()), "{text}");
        }
        // Shapes left to the general path.
        for other in [
            "[ 1,2]",
            "[1, 2]",
            "[1,2 ]",
            "[0,1]",
            "[-1,2]",
            "[1.5,2]",
            "[1,1e3]",
            "[1,\"NaN\"]",
            "[1,2,3]",
            "[1,01]",
            "[1,1.]",
            "[1234567890123456789,1]",
            "[1,2",
            "1,2]",
        ] {
            let mut c = Cursor::new(other.as_bytes());
            assert_eq!(c.compact_sample(), None, "{other}");
            assert_eq!(c.pos(), 0);
        }
    }

    #[test]
    fn positions() {
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_column(b"ab", 0), (1, 1));
    }
}
