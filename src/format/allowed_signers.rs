//! OpenSSH's allowed signers file (`ssh-keygen(1)`, "ALLOWED SIGNERS"), read strictly: the list
//! of keys `evstore verify --signed-by` accepts a seal's signature from.
//!
//! One entry per line: `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`. Empty lines and lines
//! starting with `#` are comments. PRINCIPALS is a comma-separated pattern list of
//! `user@domain` identities (reported, not matched: evstore accepts any listed key); OPTIONS is
//! a comma-separated list of `cert-authority`, `namespaces="PATTERN-LIST"`,
//! `valid-after="TIME"` and `valid-before="TIME"` (keywords case-insensitive, as in OpenSSH).
//! What an option means for a signature:
//!
//! - `namespaces`: the entry accepts a signature only in a namespace the pattern list matches
//!   (`*` and `?` wildcards, `!` negation: a negated match refuses);
//! - `cert-authority`: the key signs certificates, and a plain signature by it is not accepted
//!   (evstore does not verify certificate signatures, so such an entry accepts nothing);
//! - `valid-after` / `valid-before`: the entry accepts signatures only from or until that time
//!   (checked against the time of verification, as `ssh-keygen -Y verify` does without
//!   `-Overify-time`). TIME is `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, and must end in
//!   `Z` (UTC): a local time is refused rather than guessed.
//!
//! Anything else (an unknown option, a key that does not decode, an unclosed quote) is an error
//! naming the line: a file evstore cannot read exactly is never read partly.

use ssh_key::PublicKey;

/// The largest allowed signers file read (about ten thousand entries).
pub const MAX_ALLOWED_SIGNERS_BYTES: u64 = 4 << 20;

/// One entry of an allowed signers file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedSigner {
    /// The line it is on (from 1).
    pub line: usize,
    /// The principals pattern list, as written (without quotes).
    pub principals: String,
    /// The entry is a certificate authority (`cert-authority`).
    pub cert_authority: bool,
    /// The namespaces pattern list (`namespaces="..."`), if the entry has one.
    pub namespaces: Option<String>,
    /// Accepts signatures only at or after this time (Unix seconds, UTC).
    pub valid_after: Option<i64>,
    /// Accepts signatures only before this time (Unix seconds, UTC).
    pub valid_before: Option<i64>,
    /// The key, or `None` for a key type evstore does not verify (ECDSA, RSA: such an entry
    /// accepts no seal signature, since evstore verifies Ed25519 ones only).
    pub key: Option<PublicKey>,
}

impl AllowedSigner {
    /// True if this entry accepts a plain (not certificate) signature by its key in `namespace`
    /// at `now` (Unix seconds). An entry whose principals hold a negated pattern (`!`) accepts
    /// nothing: OpenSSH evaluates it against the identity `-I` names, which evstore does not take.
    pub fn accepts(&self, namespace: &str, now: i64) -> bool {
        !self.cert_authority
            && !self.principals.contains('!')
            && self
                .namespaces
                .as_deref()
                .is_none_or(|list| pattern_list_matches(list, namespace))
            && self.valid_after.is_none_or(|after| now >= after)
            && self.valid_before.is_none_or(|before| now < before)
    }
}

/// Parse an allowed signers file's text.
///
/// # Errors
///
/// `line N: reason` for the first line that is not a comment, empty, or an entry evstore reads
/// exactly.
pub fn parse(text: &str) -> Result<Vec<AllowedSigner>, String> {
    let mut signers = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let entry =
            parse_entry(trimmed, line).map_err(|reason| format!("line {line}: {reason}"))?;
        signers.push(entry);
    }
    Ok(signers)
}

fn parse_entry(text: &str, line: usize) -> Result<AllowedSigner, String> {
    let mut fields = Fields { rest: text };
    let principals = fields.next()?.ok_or_else(|| "no principals".to_string())?;
    let principals = unquote(&principals)?;
    if principals.is_empty() {
        return Err("empty principals".into());
    }
    let mut next = fields
        .next()?
        .ok_or_else(|| "no key after the principals".to_string())?;
    let mut entry = AllowedSigner {
        line,
        principals,
        cert_authority: false,
        namespaces: None,
        valid_after: None,
        valid_before: None,
        key: None,
    };
    if ssh_key::Algorithm::new(&next).is_err() {
        apply_options(&next, &mut entry)?;
        next = fields
            .next()?
            .ok_or_else(|| "no key type after the options".to_string())?;
        ssh_key::Algorithm::new(&next)
            .map_err(|_| format!("{next:?} is not a key type OpenSSH names"))?;
    }
    let base64 = fields
        .next()?
        .ok_or_else(|| format!("no key after the key type {next}"))?;
    if !matches!(next.as_str(), "ssh-ed25519" | "sk-ssh-ed25519@openssh.com") {
        // A key type evstore does not verify: the entry stays (its line was read), accepting no
        // seal signature.
        return Ok(entry);
    }
    let key = PublicKey::from_openssh(&format!("{next} {base64}"))
        .map_err(|err| format!("the {next} key does not decode ({err})"))?;
    if key.algorithm().as_str() != next {
        return Err(format!(
            "the key is a {} key, not {next} as the line says",
            key.algorithm().as_str()
        ));
    }
    entry.key = Some(key);
    // The rest of the line is a comment.
    Ok(entry)
}

/// Apply a comma-separated OPTIONS field to `entry`.
fn apply_options(options: &str, entry: &mut AllowedSigner) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for option in split_outside_quotes(options, ',')? {
        let (keyword, value) = match option.split_once('=') {
            Some((keyword, value)) => {
                // OpenSSH requires the quotes.
                if !(value.len() >= 2 && value.starts_with('"') && value.ends_with('"')) {
                    return Err(format!(
                        "option {option:?}: the value must be in double quotes"
                    ));
                }
                (keyword.to_ascii_lowercase(), Some(unquote(value)?))
            }
            None => (option.to_ascii_lowercase(), None),
        };
        if !seen.insert(keyword.clone()) {
            return Err(format!(
                "option {keyword:?} given twice (OpenSSH refuses the line: multiple clauses)"
            ));
        }
        match (keyword.as_str(), value) {
            ("cert-authority", None) => entry.cert_authority = true,
            ("namespaces", Some(list)) => entry.namespaces = Some(list),
            ("valid-after", Some(time)) => entry.valid_after = Some(parse_time(&time)?),
            ("valid-before", Some(time)) => entry.valid_before = Some(parse_time(&time)?),
            _ => {
                return Err(format!(
                    "option {option:?} is not one evstore reads (cert-authority, namespaces=, \
                     valid-after=, valid-before=)"
                ))
            }
        }
    }
    Ok(())
}

/// Split on `separator` where it is not inside double quotes.
fn split_outside_quotes(text: &str, separator: char) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c == separator && !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(format!("an unclosed quote in {text:?}"));
    }
    parts.push(current);
    if parts.iter().any(String::is_empty) {
        return Err(format!("an empty option in {text:?}"));
    }
    Ok(parts)
}

/// A value without its surrounding double quotes; a quote anywhere else is refused.
fn unquote(value: &str) -> Result<String, String> {
    let inner = match value.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .ok_or_else(|| format!("an unclosed quote in {value:?}"))?,
        None => value,
    };
    if inner.contains('"') {
        return Err(format!("a stray quote in {value:?}"));
    }
    Ok(inner.to_string())
}

/// The line's space-separated fields, a double-quoted stretch counting as part of its field.
struct Fields<'a> {
    rest: &'a str,
}

impl Fields<'_> {
    fn next(&mut self) -> Result<Option<String>, String> {
        let rest = self.rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            self.rest = rest;
            return Ok(None);
        }
        let mut quoted = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ' ' | '\t' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        if quoted {
            return Err("an unclosed quote".into());
        }
        self.rest = &rest[end..];
        Ok(Some(rest[..end].to_string()))
    }
}

/// True if `value` matches the comma-separated pattern list `list` (OpenSSH's `match_pattern_list`):
/// some pattern matches and no negated (`!`) pattern does.
pub fn pattern_list_matches(list: &str, value: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',') {
        match pattern.strip_prefix('!') {
            Some(negated) => {
                if wildcard_matches(negated.as_bytes(), value.as_bytes()) {
                    return false;
                }
            }
            None => matched |= wildcard_matches(pattern.as_bytes(), value.as_bytes()),
        }
    }
    matched
}

/// `*` matches any run of bytes, `?` any one byte; everything else itself.
fn wildcard_matches(pattern: &[u8], value: &[u8]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == value[v]) {
            p += 1;
            v += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, v));
            p += 1;
        } else if let Some((star_p, star_v)) = star {
            p = star_p + 1;
            v = star_v + 1;
            star = Some((star_p, star_v + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// `YYYYMMDD[HHMM[SS]]Z` as Unix seconds. A time without `Z` is local time in OpenSSH; evstore
/// refuses it rather than guess the zone.
fn parse_time(text: &str) -> Result<i64, String> {
    let digits = text.strip_suffix(['Z', 'z']).ok_or_else(|| {
        format!(
            "the time {text:?} is local time; evstore reads only UTC times, written with a \
             trailing Z (such as 20270101Z)"
        )
    })?;
    let bad = || format!("the time {text:?} is not YYYYMMDD[HHMM[SS]]Z");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> i64 {
        digits.get(range).and_then(|s| s.parse().ok()).unwrap_or(0)
    };
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let (hour, minute, second) = (number(8..10), number(10..12), number(12..14));
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBu6SgrgLl3qO219zqbwctdrwgVlSNwTh/j2jcZti2AQ";

    #[test]
    fn entries_with_and_without_options_parse_and_comments_are_skipped() {
        let text = format!(
            "# team keys\n\nalice@example.com {KEY} alice's laptop\n\
             \"bob@example.com,carol@*\" namespaces=\"git,evstore-*\",valid-after=\"20260101Z\" {KEY}\n\
             ca@example.com cert-authority {KEY}\n"
        );
        let signers = parse(&text).unwrap();
        assert_eq!(signers.len(), 3);
        assert_eq!(signers[0].line, 3);
        assert_eq!(signers[0].principals, "alice@example.com");
        assert!(signers[0].accepts("evstore-seal", 0));
        assert_eq!(signers[1].principals, "bob@example.com,carol@*");
        assert_eq!(signers[1].namespaces.as_deref(), Some("git,evstore-*"));
        assert_eq!(signers[1].valid_after, Some(1_767_225_600));
        assert!(signers[1].accepts("evstore-seal", 1_767_225_600));
        assert!(!signers[1].accepts("evstore-seal", 1_767_225_599));
        assert!(!signers[1].accepts("file", 1_767_225_600));
        assert!(signers[2].cert_authority);
        assert!(!signers[2].accepts("evstore-seal", 0));
        let negated = parse(&format!("*,!mallory@x {KEY}\n")).unwrap();
        assert!(!negated[0].accepts("evstore-seal", 0));
        let ecdsa = parse("ec@x ecdsa-sha2-nistp256 AAAAE2VjZHNh\n").unwrap();
        assert!(ecdsa[0].key.is_none());
    }

    #[test]
    fn what_evstore_cannot_read_exactly_is_an_error_naming_the_line() {
        for (text, says) in [
            (format!("a@b {KEY}\nonly-principals\n"), "line 2: no key"),
            (
                format!("a@b no-touch-required {KEY}"),
                "not one evstore reads",
            ),
            (format!("a@b valid-before=\"20270101\" {KEY}"), "local time"),
            (
                format!("a@b valid-before=\"20271301Z\" {KEY}"),
                "not YYYYMMDD",
            ),
            (format!("\"a@b {KEY}"), "unclosed quote"),
            ("a@b ssh-ed25519 AAAA".to_string(), "does not decode"),
            (
                "a@b cert-authority ssh-nonsense AAAA".to_string(),
                "not a key type",
            ),
            ("a@b ssh-nonsense AAAA".to_string(), "not one evstore reads"),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn pattern_lists_match_as_openssh_matches_them() {
        assert!(pattern_list_matches("evstore-seal", "evstore-seal"));
        assert!(pattern_list_matches("git,evstore-*", "evstore-seal"));
        assert!(pattern_list_matches("e?store-seal", "evstore-seal"));
        assert!(!pattern_list_matches("git", "evstore-seal"));
        assert!(!pattern_list_matches("*,!evstore-seal", "evstore-seal"));
        assert!(!pattern_list_matches("!evstore-seal", "other"));
        assert!(pattern_list_matches("*", ""));
        assert!(!pattern_list_matches("a*b", "ac"));
    }

    #[test]
    fn times_are_utc_seconds() {
        assert_eq!(parse_time("19700101Z"), Ok(0));
        assert_eq!(parse_time("20000229235959Z"), Ok(951_868_799));
        assert!(parse_time("20010229Z").is_err());
        assert!(parse_time("2026010Z").is_err());
    }
}
