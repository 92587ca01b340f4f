//! Packed log rows: a run of consecutive inputs of one write in one row of `log_runs`.
//!
//! A row of `n = 1` holds one input as it was given (`at_ms`, `body`). A row of `n > 1` holds
//! the inputs `seq ..= seq + n - 1`, its `at_ms` the first one's, its `body` a JSON array of
//! `[at_ms, input]` pairs in order: `[[5,{"type":"heartbeat"}],[5,{"type":"tick"}]]`. Only
//! bodies that are JSON, with no white space around them, are packed (anything else would not
//! survive the array, or would not read back byte for byte); the rest are rows of their own.
//! The `log` view unpacks rows with `json_each`, so SQL sees one row per input either way.

/// Inputs one packed row holds at most.
pub(crate) const MAX_RUN: usize = 256;

/// Bytes of bodies one packed row holds at most (past this the run ends). Small enough that a
/// row is about one overflow page and that unpacking it in SQL (`json_each`, for the views)
/// stays cheap: with 32 KiB rows `study_assignments` took 1.4 × as long as with these.
pub(crate) const MAX_RUN_BYTES: usize = 4 * 1024;

/// Whether `body` can sit in a packed row and read back byte for byte: it is one JSON value
/// (as both serde_json and SQLite's JSON functions read it), with no white space around it.
pub(crate) fn packable(body: &str) -> bool {
    let bytes = body.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if !is_space(*first) && !is_space(*last) => {
            serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok()
        }
        _ => false,
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The body of a packed row of `rows` (`(at_ms, body)`, each body [`packable`]).
pub(crate) fn pack(rows: &[(i64, &str)]) -> String {
    let len: usize = rows.iter().map(|(_, body)| body.len() + 24).sum();
    let mut out = String::with_capacity(len + 2);
    out.push('[');
    for (i, (at, body)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        out.push_str(&at.to_string());
        out.push(',');
        out.push_str(body);
        out.push(']');
    }
    out.push(']');
    out
}

/// The `(at_ms, body)` pairs of a packed row's body, or why it is not one.
pub(crate) fn unpack(packed: &str) -> Result<Vec<(i64, &str)>, String> {
    let b = packed.as_bytes();
    let bad = |what: &str, at: usize| format!("packed log row: {what} at byte {at}");
    let mut out = Vec::new();
    let mut i = expect(b, 0, b'[').ok_or_else(|| bad("no array", 0))?;
    if b.get(i) == Some(&b']') && i + 1 == b.len() {
        return Ok(out);
    }
    loop {
        i = expect(b, i, b'[').ok_or_else(|| bad("no pair", i))?;
        let start = i;
        while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'-') {
            i += 1;
        }
        let at: i64 = packed[start..i]
            .parse()
            .map_err(|_| bad("no time", start))?;
        i = expect(b, i, b',').ok_or_else(|| bad("no comma", i))?;
        let end = skip_value(b, i).ok_or_else(|| bad("no input", i))?;
        out.push((at, &packed[i..end]));
        i = expect(b, end, b']').ok_or_else(|| bad("an unclosed pair", end))?;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') if i + 1 == b.len() => return Ok(out),
            _ => return Err(bad("no comma or end", i)),
        }
    }
}

/// `i + 1` if `b[i]` is `want`.
fn expect(b: &[u8], i: usize, want: u8) -> Option<usize> {
    (b.get(i) == Some(&want)).then_some(i + 1)
}

/// The end of the JSON value starting at `b[i]` (one that was checked to be JSON when it was
/// packed): a string, an object or array (strings inside skipped), or a scalar.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let start = i;
            while b.get(i).is_some_and(|c| !matches!(c, b',' | b']' | b'}')) {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

/// The end of the string whose opening quote is `b[i]`.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_back_byte_for_byte() {
        let bodies = [
            r#"{"type":"heartbeat","assignment":"A1"}"#,
            r#"{"s":"a \"quoted\" ] } [ { , string \\","n":[1,[2,{"x":null}]]}"#,
            r#"{ "spaced" : [ 1 , 2 ] }"#,
            r#""just a string""#,
            "12.5e3",
            "-7",
            "true",
            "null",
            "[]",
            "{}",
            r#"{"unicode":"é ✓ \u00e9"}"#,
        ];
        let rows: Vec<(i64, &str)> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (i as i64 * 1000, *b))
            .collect();
        assert!(bodies.iter().all(|b| packable(b)));
        let packed = pack(&rows);
        serde_json::from_str::<serde_json::Value>(&packed).expect("a packed row is JSON");
        assert_eq!(unpack(&packed).unwrap(), rows);
    }

    #[test]
    fn only_json_without_surrounding_space_is_packable() {
        for body in [
            "", "not json", " {}", "{} ", "{\"a\":1", "{}{}", "\n[]", "a1",
        ] {
            assert!(!packable(body), "{body:?}");
        }
    }

    #[test]
    fn damaged_rows_are_errors_not_panics() {
        for packed in [
            "",
            "[",
            "[[",
            "[[1",
            "[[1,",
            "[[1,{]",
            "[[1,\"x]]",
            "[[x,1]]",
            "[[1,2]",
            "[[1,2]]x",
        ] {
            assert!(unpack(packed).is_err(), "{packed:?}");
        }
    }
}
