//! Choosing and unlocking the officer badge for a command (`--badge auto|pcsc|sim`), and the
//! `tasjil badge` commands. The card protocol itself is `tasjil_drivers::card`; this module only
//! talks to the operator (prompts, messages) and never touches the store.

use anyhow::Context;
use serde_json::json;
use tasjil_sync::output::Output;

use crate::cli::{read_pin, BadgeArgs, BadgeCommand, BadgeKind};
use crate::enrolment::badge::SIM_PIN;
use crate::enrolment::{OfficerBadge, SimBadge};

/// The badge a command signs with, PIN verified. `pin_stdin`: `Some(true)` reads the PIN from
/// standard input, `Some(false)` prompts at the terminal, `None` lets the simulated badge use its
/// known PIN (a card badge then prompts).
pub fn unlock(
    args: &BadgeArgs,
    sim_officer: &str,
    pin_stdin: Option<bool>,
) -> anyhow::Result<Box<dyn OfficerBadge>> {
    let kind = match args.kind.unwrap_or(BadgeKind::Auto) {
        BadgeKind::Auto if card_inserted() => BadgeKind::Pcsc,
        BadgeKind::Auto => BadgeKind::Sim,
        k => k,
    };
    match kind {
        BadgeKind::Pcsc => unlock_card(args, pin_stdin.unwrap_or(false)),
        _ => {
            let pin = match pin_stdin {
                Some(from_stdin) => read_pin(from_stdin)?,
                None => SIM_PIN.to_string(),
            };
            Ok(Box::new(SimBadge::unlock(sim_officer, &pin)?))
        }
    }
}

#[cfg(feature = "pcsc")]
pub(crate) fn card_inserted() -> bool {
    tasjil_drivers::card::readers().is_ok_and(|r| r.iter().any(|r| r.card_present))
}

#[cfg(not(feature = "pcsc"))]
pub(crate) fn card_inserted() -> bool {
    false
}

#[cfg(feature = "pcsc")]
fn unlock_card(args: &BadgeArgs, pin_stdin: bool) -> anyhow::Result<Box<dyn OfficerBadge>> {
    use tasjil_drivers::card::{self, PcscBadge};
    let wait = std::time::Duration::from_secs(args.badge_wait);
    if !card_inserted() {
        eprintln!("insert the badge in the reader ({} s)", args.badge_wait);
    }
    let reader = card::wait_for_card(None, wait)?;
    let mut badge = PcscBadge::open(&reader).with_context(|| format!("badge in {reader}"))?;
    let info = badge.info().clone();
    eprintln!(
        "badge {} ({}) in {}: {} PIN attempts left",
        info.officer_id, info.officer_name, info.reader, info.pin_retries
    );
    let pin = read_pin(pin_stdin)?;
    badge
        .verify_pin(&pin)
        .with_context(|| format!("badge {}", info.officer_id))?;
    Ok(Box::new(badge))
}

#[cfg(not(feature = "pcsc"))]
fn unlock_card(_: &BadgeArgs, _: bool) -> anyhow::Result<Box<dyn OfficerBadge>> {
    anyhow::bail!("this build has no PC/SC support (feature `pcsc`): use --badge sim")
}

/// `tasjil badge ...`
pub fn run(command: BadgeCommand) -> anyhow::Result<Output> {
    match command {
        BadgeCommand::Status => status(),
        BadgeCommand::Personalise {
            officer_id,
            name,
            reader,
        } => personalise(&officer_id, &name, reader),
        BadgeCommand::Bench { count } => bench(count),
    }
}

#[cfg(feature = "pcsc")]
fn status() -> anyhow::Result<Output> {
    use tasjil_drivers::card::{self, PcscBadge};
    let readers = card::readers()?;
    let mut human = format!("{} PC/SC readers", readers.len());
    let mut list = Vec::new();
    for r in &readers {
        let mut j = json!({"reader": r.name, "card_present": r.card_present});
        human.push_str(&format!("\n{}: ", r.name));
        if !r.card_present {
            human.push_str("no card");
        } else {
            match PcscBadge::open(&r.name) {
                Ok(b) => {
                    let i = b.info();
                    human.push_str(&format!(
                        "badge {} ({}), card {}, key {}, {} PIN attempts left, {} signatures",
                        i.officer_id,
                        i.officer_name,
                        i.ident,
                        b.public_key_hex(),
                        i.pin_retries,
                        i.signatures
                    ));
                    j["badge"] = json!({
                        "officer_id": i.officer_id, "officer_name": i.officer_name,
                        "card": i.ident, "public_key": b.public_key_hex(),
                        "pin_retries": i.pin_retries, "signatures": i.signatures,
                    });
                }
                Err(e) => {
                    human.push_str(&format!("card not usable as a badge: {e}"));
                    j["error"] = json!(e.to_string());
                }
            }
        }
        list.push(j);
    }
    Ok(Output::ok(json!({ "readers": list }), human))
}

#[cfg(feature = "pcsc")]
fn personalise(officer_id: &str, name: &str, reader: Option<String>) -> anyhow::Result<Output> {
    use tasjil_drivers::card::{self, Personalisation};
    let reader = match reader {
        Some(r) => r,
        None => card::wait_for_card(None, std::time::Duration::from_secs(30))?,
    };
    eprintln!("admin PIN of the card in {reader}:");
    let admin_pin = read_pin(!std::io::IsTerminal::is_terminal(&std::io::stdin()))?;
    let key = card::personalise(
        &reader,
        &admin_pin,
        &Personalisation {
            officer_id,
            officer_name: name,
        },
    )
    .with_context(|| format!("personalising the card in {reader}"))?;
    let key = hex::encode(key);
    Ok(Output::ok(
        json!({"reader": reader, "officer_id": officer_id, "officer_name": name, "public_key": key}),
        format!(
            "badge {officer_id} ({name}) personalised in {reader}\n  signing key (Ed25519, generated on the card): {key}\n  \
             the station registers it at the officer's first login; check it against this line"
        ),
    ))
}

/// PIN verification + signature of a 50-byte message (domain tag + SHA-256 digest, as for an
/// envelope co-signature), `count` times, each verified with the card's public key.
#[cfg(feature = "pcsc")]
fn bench(count: u32) -> anyhow::Result<Output> {
    use ed25519_dalek::Verifier;
    use tasjil_drivers::card::{self, PcscBadge};
    let reader = card::wait_for_card(None, std::time::Duration::from_secs(30))?;
    let mut badge = PcscBadge::open(&reader)?;
    badge.verify_pin(&read_pin(true)?)?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&badge.info().public_key)?;
    let mut message = b"tasjil/bench/v1\0".to_vec();
    message.extend_from_slice(&tasjil_sync::canonical::sha256(b"bench"));
    let mut ms = Vec::with_capacity(count as usize);
    for _ in 0..count.max(1) {
        let t = std::time::Instant::now();
        let sig = badge.sign(&message)?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        key.verify(&message, &ed25519_dalek::Signature::from_bytes(&sig))
            .context("the card's signature does not verify")?;
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    Ok(Output::ok(
        json!({"reader": reader, "count": ms.len(), "mean_ms": mean, "p50_ms": at(0.5),
               "p95_ms": at(0.95), "max_ms": at(1.0)}),
        format!(
            "PIN + sign through pcscd ({reader}), {} signatures, all verified\n  mean {mean:.1} ms  p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms",
            ms.len(),
            at(0.5),
            at(0.95),
            at(1.0)
        ),
    ))
}

#[cfg(not(feature = "pcsc"))]
fn bench(_: u32) -> anyhow::Result<Output> {
    anyhow::bail!("this build has no PC/SC support (feature `pcsc`)")
}

#[cfg(not(feature = "pcsc"))]
fn status() -> anyhow::Result<Output> {
    anyhow::bail!("this build has no PC/SC support (feature `pcsc`)")
}

#[cfg(not(feature = "pcsc"))]
fn personalise(_: &str, _: &str, _: Option<String>) -> anyhow::Result<Output> {
    anyhow::bail!("this build has no PC/SC support (feature `pcsc`)")
}

/// A badge's identity and public key, read without a PIN.
struct BadgeIdentity {
    officer_id: String,
    officer_name: String,
    public_key: String,
    source: String,
}

fn read_badge(args: &BadgeArgs, id: Option<&str>) -> anyhow::Result<BadgeIdentity> {
    let kind = match args.kind.unwrap_or(BadgeKind::Auto) {
        BadgeKind::Auto if card_inserted() => BadgeKind::Pcsc,
        BadgeKind::Auto => BadgeKind::Sim,
        k => k,
    };
    if kind == BadgeKind::Pcsc {
        return read_card(args);
    }
    let Some(id) = id else {
        anyhow::bail!("no badge is inserted in a PC/SC reader: insert the badge, or give --id for the simulated badge (--badge sim)");
    };
    let badge = SimBadge::unlock(id, SIM_PIN)?;
    Ok(BadgeIdentity {
        officer_id: badge.officer_id(),
        officer_name: badge.officer_name(),
        public_key: badge.public_key_hex(),
        source: "simulated badge".into(),
    })
}

#[cfg(feature = "pcsc")]
fn read_card(args: &BadgeArgs) -> anyhow::Result<BadgeIdentity> {
    use tasjil_drivers::card::{self, PcscBadge};
    if !card_inserted() {
        eprintln!("insert the badge in the reader ({} s)", args.badge_wait);
    }
    let reader = card::wait_for_card(None, std::time::Duration::from_secs(args.badge_wait))?;
    let badge = PcscBadge::open(&reader).with_context(|| format!("badge in {reader}"))?;
    let info = badge.info();
    Ok(BadgeIdentity {
        officer_id: info.officer_id.clone(),
        officer_name: info.officer_name.clone(),
        public_key: badge.public_key_hex(),
        source: format!("card {} in {reader}", info.ident),
    })
}

#[cfg(not(feature = "pcsc"))]
fn read_card(_: &BadgeArgs) -> anyhow::Result<BadgeIdentity> {
    anyhow::bail!("this build has no PC/SC support (feature `pcsc`): use --badge sim")
}

/// `tasjil officer add`: register the badge's key for an officer or supervisor, audited.
pub fn officer_add(
    dir: &crate::station::DataDir,
    role: crate::cli::OfficerRole,
    id: Option<&str>,
    name: Option<&str>,
    emergency: Option<&str>,
    args: &BadgeArgs,
) -> anyhow::Result<Output> {
    let badge = read_badge(args, id)?;
    if let Some(id) = id.filter(|id| *id != badge.officer_id) {
        anyhow::bail!(
            "the badge ({}) belongs to officer {}, not {id}: insert {id}'s badge",
            badge.source,
            badge.officer_id
        );
    }
    let name = name.map_or(badge.officer_name.clone(), str::to_string);
    let mut station = crate::station::Station::open(dir)?;
    // Trust comes from the centre's roster: off a training station without one, a badge is added
    // here only as a named emergency override, audited, that the centre will see.
    let roster_station = station.view.roster()?.is_some() || !station.view.simulation()?;
    if roster_station {
        let Some(reason) = emergency.map(str::trim).filter(|r| !r.is_empty()) else {
            anyhow::bail!(
                "this station takes its badges from the centre's roster (`tasjil roster show`): \
                 ask the centre to add {} (tasjil-central roster add), then sync or import the \
                 roster; in an emergency only, `tasjil officer add --emergency REASON` lets the \
                 badge work here before that, recorded in the audit chain",
                badge.officer_id
            );
        };
        station.store().register_override(
            &badge.officer_id,
            &name,
            role.as_str(),
            &badge.public_key,
            reason,
            crate::now_ms(),
        )?;
        station.audit(
            "officer-override",
            &badge.officer_id,
            json!({"id": badge.officer_id, "name": name, "role": role.as_str(),
                   "badge": badge.public_key, "source": badge.source, "reason": reason}),
        )?;
        return Ok(Output::ok(
            json!({"id": badge.officer_id, "name": name, "role": role.as_str(),
                   "public_key": badge.public_key, "override": reason, "source": badge.source}),
            format!(
                "EMERGENCY OVERRIDE: {} {} ({name}) may work on this station before the roster lists the badge ({reason}); recorded in the audit chain — the centre holds the records this badge co-signs until staff decide",
                role.as_str(),
                badge.officer_id
            ),
        ));
    }
    let new = station.store().register_officer(
        &badge.officer_id,
        &name,
        role.as_str(),
        &badge.public_key,
        crate::now_ms(),
    )?;
    // An officer already registered becomes a supervisor when added as one (audited); adding
    // as an officer never takes a supervisor's role away.
    let promoted = !new
        && role == crate::cli::OfficerRole::Supervisor
        && station
            .store()
            .promote_to_supervisor(&badge.officer_id, &badge.public_key)?;
    if promoted {
        station.audit(
            "officer-promote",
            &badge.officer_id,
            json!({"id": badge.officer_id, "role": "supervisor", "badge": badge.public_key,
                   "source": badge.source}),
        )?;
    }
    let registered = station
        .store()
        .officers()?
        .into_iter()
        .find(|o| o.id == badge.officer_id)
        .context("the officer just registered is not in the store")?;
    if new {
        station.audit(
            "officer-add",
            &badge.officer_id,
            json!({"id": badge.officer_id, "name": name, "role": role.as_str(),
                   "badge": badge.public_key, "source": badge.source}),
        )?;
    }
    let human = if promoted {
        format!(
            "officer {} is now a supervisor (same badge key {})",
            badge.officer_id, badge.public_key
        )
    } else if new {
        format!(
            "{} {} ({name}) registered with badge key {} ({})",
            role.as_str(),
            badge.officer_id,
            badge.public_key,
            badge.source
        )
    } else {
        format!(
            "{} {} was already registered with this badge key (as {}): nothing changed",
            role.as_str(),
            badge.officer_id,
            registered.role
        )
    };
    Ok(Output::ok(
        json!({"id": registered.id, "name": registered.name, "role": registered.role,
               "public_key": registered.public_key, "new": new, "promoted": promoted,
               "source": badge.source}),
        human,
    ))
}

/// `tasjil officer list`.
pub fn officer_list(dir: &crate::station::DataDir) -> anyhow::Result<Output> {
    let view = crate::station::View::open(dir)?;
    let officers = view.store.officers()?;
    let mut human = format!("{:<16} {:<11} {:<64} name", "id", "role", "badge key");
    for o in &officers {
        human.push_str(&format!(
            "\n{:<16} {:<11} {:<64} {}",
            o.id, o.role, o.public_key, o.name
        ));
    }
    human.push_str(&format!("\n{} registered", officers.len()));
    Ok(Output::ok(json!({ "officers": officers }), human))
}
