//! `tasjil id-card read`: read a citizen's previous card through its chip from the command
//! line — what the kiosk does for a renewal, for checking a reader or a card on the spot and for
//! measuring the reading (`--count`). The key is the card's printed number and dates, checked
//! the way the kiosk checks them (`kiosk::previous`).

use anyhow::Context;
use serde_json::json;
use tasjil_drivers::emrtd::{AccessKey, IdentityPage};
use tasjil_sync::output::Output;

use crate::kiosk::previous::{CardKeyEntry, KeyProblem};

#[derive(Debug, clap::Subcommand)]
pub enum IdCardCommand {
    /// Open the chip of the card on a reader with the number and dates printed on the card and
    /// print its identity page (the card's own words; nothing is stored).
    Read {
        /// Card number as printed (5 to 9 letters and digits). With --simulate, defaults to the
        /// simulated card's.
        #[arg(long)]
        number: Option<String>,
        /// Date of birth as printed, YYYY-MM-DD.
        #[arg(long)]
        birth: Option<String>,
        /// Expiry date as printed, YYYY-MM-DD.
        #[arg(long)]
        expiry: Option<String>,
        /// The PC/SC reader holding the card (default: any reader with such a card in it).
        #[arg(long)]
        reader: Option<String>,
        /// Read the simulated card (the simulated citizen of --seed) instead of a reader.
        #[arg(long)]
        simulate: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Read the card this many times and report the times (mean, p50, p95, max).
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

/// `YYYY-MM-DD` as typed on the kiosk, `DDMMYYYY`.
fn typed(iso: &str) -> String {
    match iso.trim().split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] => format!("{d}{m}{y}"),
        _ => String::new(),
    }
}

fn printed_iso(yymmdd: &str, future: bool) -> String {
    let yy: u32 = yymmdd.get(0..2).and_then(|y| y.parse().ok()).unwrap_or(0);
    let this_year = (crate::now_ms() / 31_556_952_000 + 1970) as u32 % 100;
    let century = if future || yy <= this_year { 20 } else { 19 };
    format!(
        "{century}{yy:02}-{}-{}",
        yymmdd.get(2..4).unwrap_or("01"),
        yymmdd.get(4..6).unwrap_or("01")
    )
}

pub fn run(command: IdCardCommand) -> anyhow::Result<Output> {
    let IdCardCommand::Read {
        number,
        birth,
        expiry,
        reader,
        simulate,
        seed,
        count,
    } = command;
    let sim = simulate.then(|| crate::devices::SimIdCard::new(seed));
    let printed = sim.as_ref().map(|s| s.page().clone());
    let pick = |given: Option<String>, printed: Option<String>, what: &str| {
        given
            .or(printed)
            .with_context(|| format!("--{what} is needed: as printed on the card"))
    };
    let number = pick(
        number,
        printed.as_ref().map(|p| p.document_number.clone()),
        "number",
    )?;
    let birth = pick(
        birth,
        printed.as_ref().map(|p| printed_iso(&p.birth_date, false)),
        "birth",
    )?;
    let expiry = pick(
        expiry,
        printed.as_ref().map(|p| printed_iso(&p.expiry_date, true)),
        "expiry",
    )?;
    let (key, _) = CardKeyEntry::prefilled(&number, &typed(&birth), &typed(&expiry))
        .access_key()
        .map_err(|p| {
            anyhow::anyhow!(match p {
                KeyProblem::Number => "--number: 5 to 9 letters and digits, as printed on the card",
                KeyProblem::Birth =>
                    "--birth: not a real date (YYYY-MM-DD, as printed on the card)",
                KeyProblem::Expiry =>
                    "--expiry: not a real date (YYYY-MM-DD, as printed on the card)",
            })
        })?;
    let mut read_once: Box<dyn FnMut() -> anyhow::Result<(String, IdentityPage)>> = match sim {
        Some(mut card) => Box::new(move || {
            use crate::devices::IdCardReader;
            Ok(("simulated card".to_string(), card.read(&key, &[])?))
        }),
        None => pcsc_reader(reader, key),
    };
    let mut ms = Vec::new();
    let mut last = None;
    for _ in 0..count.max(1) {
        let t = std::time::Instant::now();
        last = Some(read_once()?);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (reader, page) = last.context("no reading was made")?;
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let sex = match page.sex.as_str() {
        "" => "unspecified",
        s => s,
    };
    let mut human = format!(
        "card {} ({} {}) read from its chip in {reader}\n  {}, {}; sex {sex}; born {}; nationality {}; expires {}",
        page.document_number,
        page.document_code,
        page.issuing_state,
        page.surname,
        page.given_names,
        printed_iso(&page.birth_date, false),
        page.nationality,
        printed_iso(&page.expiry_date, true),
    );
    if ms.len() > 1 {
        human.push_str(&format!(
            "\n  {} readings (BAC + secure messaging + DG1): mean {mean:.1} ms  p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms",
            ms.len(),
            at(0.5),
            at(0.95),
            at(1.0)
        ));
    } else {
        human.push_str(&format!("\n  read in {mean:.1} ms"));
    }
    Ok(Output::ok(
        json!({"reader": reader, "document_code": page.document_code,
               "issuing_state": page.issuing_state, "document_number": page.document_number,
               "surname": page.surname, "given_names": page.given_names, "sex": page.sex,
               "birth_date": page.birth_date, "expiry_date": page.expiry_date,
               "nationality": page.nationality, "readings": ms.len(), "mean_ms": mean,
               "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": at(1.0)}),
        human,
    ))
}

#[cfg(feature = "pcsc")]
fn pcsc_reader(
    reader: Option<String>,
    key: AccessKey,
) -> Box<dyn FnMut() -> anyhow::Result<(String, IdentityPage)>> {
    Box::new(move || {
        Ok(tasjil_drivers::emrtd::read_from_pcsc(
            reader.as_deref(),
            &[],
            &key,
        )?)
    })
}

#[cfg(not(feature = "pcsc"))]
fn pcsc_reader(
    _: Option<String>,
    _: AccessKey,
) -> Box<dyn FnMut() -> anyhow::Result<(String, IdentityPage)>> {
    Box::new(|| anyhow::bail!("this build has no PC/SC support (feature `pcsc`): use --simulate"))
}
