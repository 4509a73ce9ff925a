//! Writer and reader together: a transaction of every record type reads back field by field,
//! LEN and CNT are right, and the reader survives hostile input.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
mod common;

use common::sample;
use tasjil_nist::records::type2;
use tasjil_nist::{Record, Transaction, Value};

#[test]
fn every_record_reads_back() {
    let t = sample();
    let bytes = t.to_bytes().unwrap();
    let back = Transaction::parse(&bytes).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.header.text(2), Some("0500"));
}

#[test]
fn len_fields_and_cnt_match_the_bytes() {
    let bytes = sample().to_bytes().unwrap();
    // Walk the records by their LEN fields alone: they must tile the file exactly.
    let mut pos = 0;
    let mut types = Vec::new();
    let cnt_types = [1u8, 2, 10, 14, 14, 14, 8];
    for &t in &cnt_types {
        let len = if t == 8 {
            u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize
        } else {
            let s = std::str::from_utf8(&bytes[pos..pos + 20]).unwrap_or_else(|e| {
                std::str::from_utf8(&bytes[pos..pos + e.valid_up_to()]).unwrap()
            });
            let after = s.split_once(".001:").unwrap().1;
            after
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap()
        };
        if t != 8 {
            assert_eq!(
                bytes[pos + len - 1],
                0x1C,
                "type {t} record must end with FS"
            );
        }
        types.push(t);
        pos += len;
    }
    assert_eq!(pos, bytes.len());
    let header = Transaction::parse(&bytes).unwrap();
    assert_eq!(
        header.content_list(),
        vec![
            vec!["1".to_string(), "6".into()],
            vec!["2".into(), "01".into()],
            vec!["10".into(), "02".into()],
            vec!["14".into(), "03".into()],
            vec!["14".into(), "04".into()],
            vec!["14".into(), "05".into()],
            vec!["8".into(), "06".into()],
        ]
    );
    assert!(bytes.starts_with(b"1.001:"));
}

#[test]
fn separators_in_text_are_refused() {
    let mut t = sample();
    if let Record::Tagged(r) = &mut t.records[0] {
        r.fields[1].value = Value::text("A\u{1e}B");
    }
    assert!(t.to_bytes().is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample().to_bytes().unwrap();
    for len in 0..bytes.len() {
        assert!(
            Transaction::parse(&bytes[..len]).is_err(),
            "prefix {len} parsed"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_transactions_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8)) {
        let mut bytes = sample().to_bytes().unwrap();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 | 1 => bytes[i] = byte,
                2 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        let _ = Transaction::parse(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Transaction::parse(&bytes);
    }

    #[test]
    fn any_text_without_separators_round_trips(values in prop::collection::vec("[^\u{1c}-\u{1f}]{0,20}", 1..6)) {
        let fields: Vec<(u16, String)> = values.iter().enumerate().map(|(i, v)| (3 + i as u16, v.clone())).collect();
        let t = Transaction { header: sample().header, records: vec![type2(1, &fields)] };
        let back = Transaction::parse(&t.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(back, t);
    }
}
