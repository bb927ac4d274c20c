//! A small RFC 4180 CSV reader: quoted fields, `""` escapes, line breaks inside quotes, `\r\n`.
//! Each record carries the 1-based line it starts on, for `file:line` messages.

/// One record: the line it starts on and its fields.
pub(crate) struct CsvRecord {
    pub line: usize,
    pub fields: Vec<String>,
    /// The record's text as read, for the rejects file.
    pub raw: String,
}

/// Splits CSV text into records. An unterminated quote ends the last record with an error.
pub(crate) fn records(text: &str) -> (Vec<CsvRecord>, Option<(usize, String)>) {
    let mut out = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut raw = String::new();
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        raw.push(c);
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    raw.push('"');
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                let r = std::mem::take(&mut raw);
                if !(fields.len() == 1 && fields[0].trim().is_empty()) {
                    out.push(CsvRecord {
                        line: start_line,
                        fields: std::mem::take(&mut fields),
                        raw: r.trim_end().to_owned(),
                    });
                } else {
                    fields.clear();
                }
                line += 1;
                start_line = line;
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return (out, Some((start_line, "unterminated quoted field".into())));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        out.push(CsvRecord {
            line: start_line,
            fields,
            raw: raw.trim_end().to_owned(),
        });
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escapes_and_multiline_fields() {
        let (r, err) = records("a,b,c\r\n1,\"x, \"\"y\"\"\",\"two\nlines\"\n\n3,,z");
        assert!(err.is_none());
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].fields, vec!["1", "x, \"y\"", "two\nlines"]);
        assert_eq!(r[2].line, 5);
        assert_eq!(r[2].fields, vec!["3", "", "z"]);
        let (_, err) = records("a\n\"open");
        assert_eq!(err.unwrap().0, 2);
    }
}
