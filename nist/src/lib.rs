//! ANSI/NIST-ITL 1-2011 transactions in the traditional encoding: a writer and a reader.
//!
//! A transaction is a Type-1 header record followed by records of other types. Tagged (text)
//! records are fields `T.NNN:value` separated by GS (0x1D) and closed by FS (0x1C); a field holds
//! subfields separated by RS (0x1E), each of items separated by US (0x1F); an image record ends
//! with a binary data field (`T.999:` then raw bytes). Field 1 (LEN) is the record's length in
//! bytes, computed here; field 1.003 (CNT) lists every record, also computed here. Types 3–8 are
//! binary records: a 4-byte big-endian length, a 1-byte IDC, then a type-specific body.
//!
//! [`records`] builds the records Tasjil exports (Types 1, 2, 8, 10, 14); the [`Transaction`]
//! model itself is general, and [`Transaction::parse`] reads any transaction of these forms. The
//! reader is meant for untrusted input: it never panics and checks every length against the data.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod records;

const FS: u8 = 0x1C;
const GS: u8 = 0x1D;
const RS: u8 = 0x1E;
const US: u8 = 0x1F;
/// Field number of the binary image data that closes an image record.
pub const DATA_FIELD: u16 = 999;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NistError {
    #[error("record {record_type}: field {field} contains a separator byte (FS/GS/RS/US), which the traditional encoding cannot carry")]
    SeparatorInValue { record_type: u8, field: u16 },
    #[error("record type {0} cannot be written as a {1} record")]
    WrongKind(u8, &'static str),
    #[error("binary record of {0} bytes exceeds the 4-byte length field")]
    TooLong(usize),
    #[error("ANSI/NIST data ends early: {0}")]
    Truncated(&'static str),
    #[error("malformed ANSI/NIST data: {0}")]
    Malformed(&'static str),
    #[error("malformed ANSI/NIST data in record {index} (type {record_type}): {what}")]
    BadRecord {
        index: usize,
        record_type: u8,
        what: &'static str,
    },
}

/// A field's value: subfields of items (a plain value is one subfield of one item), or the raw
/// bytes of an image data field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(Vec<Vec<String>>),
    Binary(Vec<u8>),
}

impl Value {
    /// A plain value: one subfield of one item.
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(vec![vec![s.into()]])
    }

    /// The value when it is one item, else `None`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(sf) if sf.len() == 1 && sf[0].len() == 1 => Some(&sf[0][0]),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub number: u16,
    pub value: Value,
}

/// A tagged record. `fields` holds everything but LEN (field 1), which is computed on writing
/// and checked on reading; for records other than Type-1, field 2 is the IDC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedRecord {
    pub record_type: u8,
    pub fields: Vec<Field>,
}

impl TaggedRecord {
    pub fn new(record_type: u8) -> TaggedRecord {
        TaggedRecord {
            record_type,
            fields: Vec::new(),
        }
    }

    /// Appends a plain field; returns `self` for chaining.
    pub fn with(mut self, number: u16, value: impl Into<String>) -> TaggedRecord {
        self.fields.push(Field {
            number,
            value: Value::text(value),
        });
        self
    }

    /// Appends a field of subfields of items.
    pub fn with_subfields(mut self, number: u16, subfields: Vec<Vec<String>>) -> TaggedRecord {
        self.fields.push(Field {
            number,
            value: Value::Text(subfields),
        });
        self
    }

    pub fn with_data(mut self, bytes: Vec<u8>) -> TaggedRecord {
        self.fields.push(Field {
            number: DATA_FIELD,
            value: Value::Binary(bytes),
        });
        self
    }

    pub fn field(&self, number: u16) -> Option<&Value> {
        self.fields
            .iter()
            .find(|f| f.number == number)
            .map(|f| &f.value)
    }

    /// A plain field's text.
    pub fn text(&self, number: u16) -> Option<&str> {
        self.field(number).and_then(Value::as_str)
    }

    /// The IDC (field 2) of a record other than Type-1.
    pub fn idc(&self) -> Option<u8> {
        self.text(2).and_then(|s| s.parse().ok())
    }
}

/// A binary record (Types 3–8): IDC and the bytes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRecord {
    pub record_type: u8,
    pub idc: u8,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Tagged(TaggedRecord),
    Binary(BinaryRecord),
}

impl Record {
    pub fn record_type(&self) -> u8 {
        match self {
            Record::Tagged(r) => r.record_type,
            Record::Binary(r) => r.record_type,
        }
    }

    fn idc(&self) -> u8 {
        match self {
            Record::Tagged(r) => r.idc().unwrap_or(0),
            Record::Binary(r) => r.idc,
        }
    }
}

fn is_binary_type(t: u8) -> bool {
    (3..=8).contains(&t)
}

/// A transaction: the Type-1 header (without LEN and CNT, which are computed) and the other
/// records in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub header: TaggedRecord,
    pub records: Vec<Record>,
}

impl Transaction {
    /// The content field 1.003 for these records: `1 US count`, then `type US IDC` per record.
    pub fn content_list(&self) -> Vec<Vec<String>> {
        let mut cnt = vec![vec!["1".to_string(), self.records.len().to_string()]];
        cnt.extend(
            self.records
                .iter()
                .map(|r| vec![r.record_type().to_string(), format!("{:02}", r.idc())]),
        );
        cnt
    }

    /// The transaction in the traditional encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, NistError> {
        let mut header = self.header.clone();
        header.record_type = 1;
        header.fields.retain(|f| f.number != 1 && f.number != 3);
        header.fields.push(Field {
            number: 3,
            value: Value::Text(self.content_list()),
        });
        header.fields.sort_by_key(|f| f.number);
        let mut out = write_tagged(&header)?;
        for r in &self.records {
            match r {
                Record::Tagged(t) => {
                    if is_binary_type(t.record_type) || t.record_type == 1 {
                        return Err(NistError::WrongKind(t.record_type, "tagged"));
                    }
                    out.extend(write_tagged(t)?);
                }
                Record::Binary(b) => {
                    if !is_binary_type(b.record_type) {
                        return Err(NistError::WrongKind(b.record_type, "binary"));
                    }
                    let len = u32::try_from(b.body.len() + 5)
                        .map_err(|_| NistError::TooLong(b.body.len()))?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.push(b.idc);
                    out.extend_from_slice(&b.body);
                }
            }
        }
        Ok(out)
    }

    /// Reads a transaction. Record types after the header come from its CNT field, as the
    /// standard requires (binary records do not name their type).
    pub fn parse(bytes: &[u8]) -> Result<Transaction, NistError> {
        let (header, mut pos) = read_tagged(bytes, 0, 0)?;
        if header.record_type != 1 {
            return Err(NistError::Malformed(
                "the first record is not a Type-1 header",
            ));
        }
        let cnt = match header.field(3) {
            Some(Value::Text(sf)) => sf.clone(),
            _ => return Err(NistError::Malformed("Type-1 has no content field 1.003")),
        };
        let first = cnt
            .first()
            .ok_or(NistError::Malformed("empty content field 1.003"))?;
        let declared: usize =
            first
                .get(1)
                .and_then(|s| s.parse().ok())
                .ok_or(NistError::Malformed(
                    "content field 1.003 does not give the record count",
                ))?;
        if declared + 1 != cnt.len() {
            return Err(NistError::Malformed(
                "content field 1.003 count disagrees with its list",
            ));
        }
        let mut records = Vec::new();
        for (index, entry) in cnt.iter().enumerate().skip(1) {
            let record_type: u8 =
                entry
                    .first()
                    .and_then(|s| s.parse().ok())
                    .ok_or(NistError::Malformed(
                        "content field 1.003 has a bad record type",
                    ))?;
            let bad = |what| NistError::BadRecord {
                index,
                record_type,
                what,
            };
            if is_binary_type(record_type) {
                let head = bytes
                    .get(pos..pos + 5)
                    .ok_or(bad("binary record header cut off"))?;
                let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
                if len < 5 {
                    return Err(bad("binary record length below 5"));
                }
                let end = pos
                    .checked_add(len)
                    .filter(|&e| e <= bytes.len())
                    .ok_or(bad("binary record runs past the end"))?;
                records.push(Record::Binary(BinaryRecord {
                    record_type,
                    idc: head[4],
                    body: bytes[pos + 5..end].to_vec(),
                }));
                pos = end;
            } else {
                let (r, next) = read_tagged(bytes, pos, index)?;
                if r.record_type != record_type {
                    return Err(bad("record type differs from the content field 1.003"));
                }
                records.push(Record::Tagged(r));
                pos = next;
            }
        }
        if pos != bytes.len() {
            return Err(NistError::Malformed(
                "bytes after the last record listed in 1.003",
            ));
        }
        let mut header = header;
        header.fields.retain(|f| f.number != 3);
        Ok(Transaction { header, records })
    }
}

fn write_value(out: &mut Vec<u8>, record_type: u8, field: &Field) -> Result<(), NistError> {
    match &field.value {
        Value::Binary(b) => out.extend_from_slice(b),
        Value::Text(subfields) => {
            for (i, sf) in subfields.iter().enumerate() {
                if i > 0 {
                    out.push(RS);
                }
                for (j, item) in sf.iter().enumerate() {
                    if j > 0 {
                        out.push(US);
                    }
                    if item.bytes().any(|b| matches!(b, FS | GS | RS | US)) {
                        return Err(NistError::SeparatorInValue {
                            record_type,
                            field: field.number,
                        });
                    }
                    out.extend_from_slice(item.as_bytes());
                }
            }
        }
    }
    Ok(())
}

fn write_tagged(r: &TaggedRecord) -> Result<Vec<u8>, NistError> {
    let mut body = Vec::new();
    let mut fields: Vec<&Field> = r.fields.iter().filter(|f| f.number != 1).collect();
    // The binary data field, if any, must close the record.
    fields.sort_by_key(|f| (matches!(f.value, Value::Binary(_)), f.number));
    for f in fields {
        if matches!(f.value, Value::Binary(_)) && f.number != DATA_FIELD {
            return Err(NistError::WrongKind(
                r.record_type,
                "binary-field (only field 999 holds bytes)",
            ));
        }
        body.push(GS);
        body.extend_from_slice(format!("{}.{:03}:", r.record_type, f.number).as_bytes());
        write_value(&mut body, r.record_type, f)?;
    }
    body.push(FS);
    // LEN counts itself: iterate until the number of its digits is stable.
    let prefix = format!("{}.001:", r.record_type);
    let mut len = prefix.len() + body.len();
    loop {
        let total = prefix.len() + len.to_string().len() + body.len();
        if total == len {
            break;
        }
        len = total;
    }
    let mut out = format!("{prefix}{len}").into_bytes();
    out.extend(body);
    Ok(out)
}

/// `T.NNN:` at `pos`: (record type, field number, position after the colon).
fn read_tag(bytes: &[u8], pos: usize) -> Option<(u8, u16, usize)> {
    let digits = |from: usize| {
        let n = bytes
            .get(from..)?
            .iter()
            .take(10)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let v: u32 = std::str::from_utf8(bytes.get(from..from + n)?)
            .ok()?
            .parse()
            .ok()?;
        Some((v, from + n))
    };
    let (t, p) = digits(pos)?;
    if bytes.get(p) != Some(&b'.') {
        return None;
    }
    let (f, p) = digits(p + 1)?;
    if bytes.get(p) != Some(&b':') {
        return None;
    }
    Some((u8::try_from(t).ok()?, u16::try_from(f).ok()?, p + 1))
}

fn read_tagged(
    bytes: &[u8],
    start: usize,
    index: usize,
) -> Result<(TaggedRecord, usize), NistError> {
    let bad = |record_type, what| NistError::BadRecord {
        index,
        record_type,
        what,
    };
    let (record_type, number, p) =
        read_tag(bytes, start).ok_or(bad(0, "no LEN tag at the start of the record"))?;
    if number != 1 {
        return Err(bad(record_type, "the first field is not LEN"));
    }
    let n = bytes[p..]
        .iter()
        .take(12)
        .take_while(|b| b.is_ascii_digit())
        .count();
    let len: usize = std::str::from_utf8(&bytes[p..p + n])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(bad(record_type, "LEN is not a number"))?;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or(bad(record_type, "LEN runs past the end of the data"))?;
    if end <= p + n || bytes[end - 1] != FS {
        return Err(bad(
            record_type,
            "record does not end with FS where LEN says",
        ));
    }
    let record = &bytes[..end - 1];
    let mut pos = p + n;
    let mut fields = Vec::new();
    while pos < record.len() {
        if record[pos] != GS {
            return Err(bad(record_type, "fields not separated by GS"));
        }
        let (t, number, vstart) =
            read_tag(record, pos + 1).ok_or(bad(record_type, "malformed field tag"))?;
        if t != record_type {
            return Err(bad(record_type, "field tag names another record type"));
        }
        if number == DATA_FIELD && record_type != 1 && record_type != 2 {
            fields.push(Field {
                number,
                value: Value::Binary(record[vstart..].to_vec()),
            });
            break;
        }
        let vend = record[vstart..]
            .iter()
            .position(|&b| b == GS)
            .map_or(record.len(), |i| vstart + i);
        let text = &record[vstart..vend];
        if text.contains(&FS) {
            return Err(bad(record_type, "FS inside a record"));
        }
        let value = text
            .split(|&b| b == RS)
            .map(|sf| {
                sf.split(|&b| b == US)
                    .map(|item| String::from_utf8_lossy(item).into_owned())
                    .collect()
            })
            .collect();
        fields.push(Field {
            number,
            value: Value::Text(value),
        });
        pos = vend;
    }
    Ok((
        TaggedRecord {
            record_type,
            fields,
        },
        end,
    ))
}
