//! CSV in and out, through the `csv` crate. Files go out as UTF-8 with a
//! byte-order mark (so Excel opens them right) and a header row; files come
//! in with or without the mark, with header names matched case-insensitively.

use std::collections::HashMap;

use csv::{ByteRecord, ReaderBuilder, Writer};

use crate::error::{AppError, Code, FieldError};

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// How far into a file to look for the NUL bytes that give binary files away.
const SNIFF_BYTES: usize = 8 * 1024;

/// A CSV file being written: the mark, the header, then rows.
pub struct CsvOut {
    writer: Writer<Vec<u8>>,
    rows: usize,
}

impl CsvOut {
    pub fn new(header: &[&str]) -> Result<Self, AppError> {
        let mut writer = Writer::from_writer(BOM.to_vec());
        writer.write_record(header).map_err(AppError::internal)?;
        Ok(CsvOut { writer, rows: 0 })
    }

    /// Writes a record, each cell neutralised against formula injection.
    pub fn row<I, F>(&mut self, fields: I) -> Result<(), AppError>
    where
        I: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        self.rows += 1;
        let fields: Vec<F> = fields.into_iter().collect();
        let cells = fields.iter().map(|cell| neutralised(cell.as_ref()));
        self.writer.write_record(cells).map_err(AppError::internal)
    }

    /// Rows written, not counting the header.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(self) -> Result<Vec<u8>, AppError> {
        self.writer
            .into_inner()
            .map_err(|e| AppError::internal(e.to_string()))
    }
}

/// First characters a spreadsheet reads as the start of a formula (OWASP's
/// CSV-injection list): a cell starting with one is written with a leading
/// `'`, which spreadsheets show as text.
const FORMULA_STARTS: &[u8] = b"=+-@\t\r";

/// `cell`, with a `'` in front when it could start a formula.
fn neutralised(cell: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match cell.first() {
        Some(first) if FORMULA_STARTS.contains(first) => {
            let mut quoted = Vec::with_capacity(cell.len() + 1);
            quoted.push(b'\'');
            quoted.extend_from_slice(cell);
            quoted.into()
        }
        _ => cell.into(),
    }
}

/// What `neutralised` wrote, read back: one leading `'` goes when a formula
/// character follows it, so an export imports as it was.
fn unneutralised(text: &str) -> &str {
    match text.as_bytes() {
        [b'\'', next, ..] if FORMULA_STARTS.contains(next) => &text[1..],
        _ => text,
    }
}

/// An uploaded CSV file: its columns by (lowercased) name, and its records
/// with their row numbers (the header is row 1, the first record row 2;
/// empty lines are skipped and not counted).
pub struct Sheet {
    columns: HashMap<String, usize>,
    pub records: Vec<(usize, ByteRecord)>,
}

impl Sheet {
    /// Parses the file, or says in a sentence why it cannot be imported at
    /// all (the checks `check` makes at upload, and unreadable records).
    pub fn parse(bytes: &[u8], required: &[&str]) -> Result<Sheet, String> {
        let columns = header(bytes, required).map_err(|reason| reason.message)?;
        let mut reader = reader(bytes);
        let mut records = Vec::new();
        let mut record = ByteRecord::new();
        // The header, read already.
        reader
            .read_byte_record(&mut record)
            .map_err(|error| format!("not a CSV file: {error}"))?;
        let mut row = 1;
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    row += 1;
                    if record
                        .iter()
                        .all(|field| field.iter().all(u8::is_ascii_whitespace))
                    {
                        continue;
                    }
                    records.push((row, record.clone()));
                }
                Err(error) => return Err(format!("not a readable CSV file: {error}")),
            }
        }
        Ok(Sheet { columns, records })
    }

    /// A record's value in `column`, trimmed; `None` when the column is absent
    /// or the cell empty. Bytes that are not UTF-8 are the cell's error.
    pub fn field<'r>(
        &self,
        record: &'r ByteRecord,
        column: &str,
    ) -> Result<Option<&'r str>, &'static str> {
        let Some(raw) = self.columns.get(column).and_then(|&i| record.get(i)) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(raw).map_err(|_| "is not valid UTF-8 text")?;
        // PostgreSQL stores no NUL: the cell is refused, not the import.
        if text.contains('\0') {
            return Err("must not contain control characters");
        }
        let text = unneutralised(text.trim());
        Ok((!text.is_empty()).then_some(text))
    }
}

/// The checks an upload gets before it is accepted: a CSV file, in UTF-8, with
/// the required columns.
pub fn check(bytes: &[u8], required: &[&str]) -> Result<(), FieldError> {
    header(bytes, required).map(|_| ())
}

fn reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body)
}

fn header(bytes: &[u8], required: &[&str]) -> Result<HashMap<String, usize>, FieldError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Code::EmptyFile.into());
    }
    if bytes[..bytes.len().min(SNIFF_BYTES)].contains(&0) {
        return Err(Code::BinaryFile.into());
    }
    let mut names = ByteRecord::new();
    reader(bytes)
        .read_byte_record(&mut names)
        .map_err(|error| FieldError::new(Code::NotCsv).with("detail", error.to_string()))?;
    let mut columns = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let name = std::str::from_utf8(name).map_err(|_| FieldError::new(Code::TextEncoding))?;
        columns.entry(name.trim().to_lowercase()).or_insert(i);
    }
    // `a|b` asks for either column.
    let missing: Vec<String> = required
        .iter()
        .filter(|wanted| !wanted.split('|').any(|column| columns.contains_key(column)))
        .map(|wanted| wanted.replace('|', " or "))
        .collect();
    if !missing.is_empty() {
        return Err(FieldError::new(Code::MissingColumns).with("columns", missing.join(", ")));
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bom_crlf_quotes_and_any_header_case() {
        let file =
            "\u{feff}Code,TITLE,credits\r\nC1,\"Hello, world\",3\r\n\r\nC2,\"Two\nlines\",4.5\r\n";
        let sheet = Sheet::parse(file.as_bytes(), &["code", "title"]).unwrap();
        assert_eq!(sheet.records.len(), 2);
        let (row, record) = &sheet.records[1];
        assert_eq!(*row, 3, "records are numbered, empty lines skipped");
        assert_eq!(sheet.field(record, "title"), Ok(Some("Two\nlines")));
        assert_eq!(sheet.field(record, "description"), Ok(None));
        let (_, first) = &sheet.records[0];
        assert_eq!(sheet.field(first, "title"), Ok(Some("Hello, world")));
    }

    #[test]
    fn formula_cells_are_written_as_text_and_read_back_as_they_were() {
        let mut out = CsvOut::new(&["title", "plain"]).unwrap();
        let risky = [
            "=HYPERLINK(\"http://evil\",\"x\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tx",
        ];
        for cell in risky {
            out.row([cell, "safe"]).unwrap();
        }
        out.row(["'quoted", "it's"]).unwrap();
        let bytes = out.finish().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",safe"));
        assert!(text.contains("\n'+1,safe\n'-2,safe\n'@SUM(A1),safe\n"));
        let sheet = Sheet::parse(&bytes, &["title"]).unwrap();
        let titles: Vec<&str> = sheet
            .records
            .iter()
            .map(|(_, record)| sheet.field(record, "title").unwrap().unwrap())
            .collect();
        assert_eq!(
            titles,
            [
                "=HYPERLINK(\"http://evil\",\"x\")",
                "+1",
                "-2",
                "@SUM(A1)",
                "\tx",
                "'quoted"
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_an_importable_csv() {
        let refused = |bytes: &[u8], required: &[&str]| check(bytes, required).unwrap_err();
        assert_eq!(refused(b"", &["code"]).code, Code::EmptyFile);
        assert_eq!(
            refused(b"\x89PNG\r\n\x1a\n\0\0", &["code"]).code,
            Code::BinaryFile
        );
        assert_eq!(
            refused(b"c\xf3de,title\n", &["code"]).code,
            Code::TextEncoding
        );
        assert_eq!(
            refused(b"code,name\n", &["code", "title"]).message,
            "missing required columns: title (the first row must name the columns)"
        );
        let sheet = Sheet::parse(b"code,title\nC\xe9,T\n", &["code"]).unwrap();
        let (_, record) = &sheet.records[0];
        assert_eq!(sheet.field(record, "code"), Err("is not valid UTF-8 text"));
    }

    #[test]
    fn writes_a_bom_and_quotes_what_needs_it() {
        let mut out = CsvOut::new(&["code", "title"]).unwrap();
        out.row(["C1", "Hello, \"world\""]).unwrap();
        assert_eq!(out.rows(), 1);
        let bytes = out.finish().unwrap();
        assert_eq!(
            bytes,
            b"\xEF\xBB\xBFcode,title\nC1,\"Hello, \"\"world\"\"\"\n".to_vec()
        );
    }
}
