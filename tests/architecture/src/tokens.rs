//! A tokenizer that keeps what paths are made of (identifiers, `::` and punctuation) and drops
//! comments, string, byte-string, raw-string and character literals, numbers and lifetimes, so
//! that a path named in a doc comment or a string is never taken for an import.

/// One token of Rust source, as far as paths need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An identifier or keyword (`r#type` gives `type`; `$crate` gives `crate`).
    Ident(String),
    /// `::`
    PathSep,
    /// Any other punctuation character.
    Punct(char),
}

impl Token {
    /// True when the token is the identifier or keyword `word`.
    pub fn is(&self, word: &str) -> bool {
        matches!(self, Token::Ident(s) if s == word)
    }
}

/// The tokens of `source`.
pub fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i);
        } else if c == '"' {
            i = skip_quoted(&chars, i + 1, '"');
        } else if (c == 'r' || c == 'b') && starts_raw_or_byte_string(&chars, i) {
            i = skip_prefixed_string(&chars, i);
        } else if c == '\'' {
            i = skip_char_or_lifetime(&chars, i);
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                i += 1;
            }
        } else if c == 'r' && next == Some('#') && chars.get(i + 2).is_some_and(|&d| is_ident_start(d)) {
            let (word, end) = read_ident(&chars, i + 2);
            out.push(Token::Ident(word));
            i = end;
        } else if is_ident_start(c) {
            let (word, end) = read_ident(&chars, i);
            out.push(Token::Ident(word));
            i = end;
        } else if c == '$' && chars.get(i + 1).is_some_and(|&d| is_ident_start(d)) {
            let (word, end) = read_ident(&chars, i + 1);
            out.push(Token::Ident(word));
            i = end;
        } else if c == ':' && next == Some(':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn read_ident(chars: &[char], start: usize) -> (String, usize) {
    let mut end = start;
    while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
        end += 1;
    }
    (chars[start..end].iter().collect(), end)
}

fn skip_block_comment(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Skips to after the closing `quote`, honouring backslash escapes.
fn skip_quoted(chars: &[char], mut i: usize, quote: char) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// `r"`, `r#"`, `b"`, `br"`, `br#"`, `b'` at `i` (and not an identifier such as `bar`).
fn starts_raw_or_byte_string(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
        if matches!(chars.get(j), Some('"') | Some('\'')) {
            return true;
        }
    }
    if chars.get(j) == Some(&'r') {
        j += 1;
        while chars.get(j) == Some(&'#') {
            j += 1;
        }
        return chars.get(j) == Some(&'"');
    }
    false
}

fn skip_prefixed_string(chars: &[char], start: usize) -> usize {
    let mut i = start;
    if chars[i] == 'b' {
        i += 1;
        match chars.get(i) {
            Some('"') => return skip_quoted(chars, i + 1, '"'),
            Some('\'') => return skip_quoted(chars, i + 1, '\''),
            _ => {}
        }
    }
    // raw: r, then hashes, then the quote
    i += 1;
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

fn skip_char_or_lifetime(chars: &[char], start: usize) -> usize {
    match (chars.get(start + 1), chars.get(start + 2)) {
        (Some('\\'), _) => skip_quoted(chars, start + 1, '\''),
        (Some(_), Some('\'')) => start + 3,
        // A lifetime or label: the identifier after it is no path.
        (Some(&c), _) if is_ident_start(c) => read_ident(chars, start + 1).1,
        _ => start + 1,
    }
}
