//! `tasjil-vcard`: a virtual OpenPGP officer badge, or a virtual citizen's eID chip, for the
//! PC/SC tests.
//!
//! It runs the `opcard` OpenPGP card application on trussed's in-RAM software platform and
//! inserts it into vsmartcard's virtual reader (`vpcd`, part of pcscd's drivers), so the station's
//! real PC/SC badge backend talks to a real card implementation through a real pcscd. With
//! `--emrtd` it inserts instead the station's own software eMRTD chip
//! (`tasjil_drivers::emrtd::SoftChip`, BAC and secure messaging) holding the identity page given,
//! into vpcd's second reader, so the station's chip reader is tested through pcscd too.
//!
//! Test tool only: the card's random generator is seeded with a constant (keys repeat between
//! runs) and its storage vanishes with the process. Never a dependency of a shipped binary.
//!
//! vpcd's protocol: the card connects to vpcd (TCP, default 127.0.0.1:35963; the connection *is*
//! the card insertion, closing it is the removal). Every message either way is a 2-byte
//! big-endian length and a body. A 1-byte body from vpcd is a control message (power off, power
//! on, reset, ATR request; only the ATR request is answered); anything longer is a command APDU,
//! answered with the response APDU (data + status word).
//!
//! Usage: `tasjil-vcard [--port N] [--serial HEX8]` (OpenPGP badge, port 35963 by default) or
//! `tasjil-vcard --emrtd MRZ90 [--port N]` (eID chip, port 35964 by default). Prints `card ready`
//! on stderr once connected.

use std::io::{Read, Write};
use std::net::TcpStream;

use iso7816::command::CommandView;
use iso7816::{Command, Status};
use tasjil_drivers::emrtd::{IdentityPage, SoftChip};

mod platform;

/// Answer to reset: T=1, with the historical bytes opcard's default options report (so the ATR
/// and the card's own capabilities agree); the last byte is the XOR check over T0..end.
const ATR: &[u8] = &[
    0x3B, 0x8A, 0x80, 0x01, 0x00, 0x31, 0xF5, 0x73, 0xC0, 0x01, 0x60, 0x00, 0x90, 0x00, 0x8D,
];

/// Answer to reset of the eID chip: T=1 (TD1 = 80, TD2 = 01), historical bytes "TASJILID"; the
/// last byte is the XOR check over T0..end.
const CHIP_ATR: &[u8] = &[
    0x3B, 0x88, 0x80, 0x01, 0x54, 0x41, 0x53, 0x4A, 0x49, 0x4C, 0x49, 0x44, 0x0D,
];

/// vpcd's ports: the first reader ("Virtual PCD 00 00") for badges, the second for the chip.
const BADGE_PORT: u16 = 35963;
const CHIP_PORT: u16 = 35964;
/// The chip's challenges are drawn from this seed: a test tool, not a secret.
const CHIP_SEED: u64 = 1;

const CTRL_OFF: u8 = 0;
const CTRL_ON: u8 = 1;
const CTRL_RESET: u8 = 2;
const CTRL_ATR: u8 = 4;

/// Largest response opcard produces (its own buffers use this bound).
const REPLY_LEN: usize = 7609;
/// Largest command accepted after chaining (a full key import fits).
const COMMAND_LEN: usize = 7609;
/// Largest response to a short (not extended) APDU; longer ones go out by GET RESPONSE.
const SHORT_LE: usize = 256;

/// Which card goes in.
enum Mode {
    /// An OpenPGP badge with this serial number.
    Badge { serial: [u8; 4] },
    /// An eID chip holding this identity page.
    Chip { page: Box<IdentityPage> },
}

struct Args {
    port: Option<u16>,
    mode: Mode,
}

fn parse_args() -> Result<Args, String> {
    let mut port = None;
    let mut serial = None;
    let mut page = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--port" => port = Some(value.parse().map_err(|e| format!("--port: {e}"))?),
            "--serial" => {
                let n = u32::from_str_radix(&value, 16).map_err(|e| format!("--serial: {e}"))?;
                serial = Some(n.to_be_bytes());
            }
            "--emrtd" => {
                page = Some(IdentityPage::from_mrz(&value).map_err(|e| format!("--emrtd: {e}"))?)
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    let mode = match (page, serial) {
        (Some(_), Some(_)) => return Err("--serial is for the OpenPGP badge, not --emrtd".into()),
        (Some(page), None) => Mode::Chip {
            page: Box::new(page),
        },
        (None, serial) => Mode::Badge {
            serial: serial.unwrap_or([0x7A, 0x51, 0x00, 0x01]),
        },
    };
    Ok(Args { port, mode })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "tasjil-vcard: {e}\nusage: tasjil-vcard [--port N] [--serial HEX8]\n       \
                 tasjil-vcard --emrtd MRZ90 [--port N]"
            );
            std::process::exit(2);
        }
    };
    let result = match args.mode {
        Mode::Badge { serial } => platform::with_card_client(|mut client| {
            // trussed's virtual platform seeds its generator with a constant: a serial-dependent
            // number of draws first, so that two badges of one test get two different keys (the
            // same serial still gives the same key on every run).
            {
                use trussed_core::CryptoClient;
                for _ in 0..u32::from_be_bytes(serial) % 61 + 1 {
                    trussed_core::syscall!(client.random_bytes(32));
                }
            }
            let mut options = opcard::Options::default();
            options.serial = serial;
            // No touch button on a badge: signing needs the PIN only.
            options.button_available = false;
            let mut card = OpenPgpBadge {
                card: opcard::Card::new(client, options),
                apdu: Apdu::default(),
            };
            serve(&mut card, args.port.unwrap_or(BADGE_PORT))
        }),
        Mode::Chip { page } => {
            let mut chip = Chip(SoftChip::new(&page, CHIP_SEED));
            serve(&mut chip, args.port.unwrap_or(CHIP_PORT))
        }
    };
    match result {
        // vpcd closed the connection: pcscd stopped. A clean end for a test tool.
        Ok(()) => {}
        Err(e) => {
            eprintln!("tasjil-vcard: {e}");
            std::process::exit(1);
        }
    }
}

/// Receive one vpcd message, or `None` when vpcd closed the connection.
fn receive(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    quickack(stream);
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    // vpcd writes the length and the body separately: without a fresh QUICKACK the kernel's
    // delayed ACK holds the body back by ~40 ms per APDU.
    quickack(stream);
    stream.read_exact(&mut body)?;
    Ok(Some(body))
}

fn send(stream: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(body.len())
        .map_err(|_| std::io::Error::other("response longer than vpcd's frame"))?;
    let mut frame = Vec::with_capacity(body.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame)
}

/// Linux resets `TCP_QUICKACK` after each ACK, so it is set again before every read.
#[allow(unsafe_code)]
fn quickack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket descriptor we own for the duration of the call, with a
    // pointer to a live c_int and its exact size; failure only costs latency, so it is ignored.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A card as vpcd sees it: an ATR, a reset, and one response APDU per command APDU.
trait VpcdCard {
    fn atr(&self) -> &'static [u8];
    /// Power off or reset: volatile state goes.
    fn reset(&mut self);
    fn respond(&mut self, command: &[u8]) -> Vec<u8>;
}

/// The opcard application behind the card OS's APDU handling (chaining, GET RESPONSE).
struct OpenPgpBadge<C: opcard::Client> {
    card: opcard::Card<C>,
    apdu: Apdu,
}

impl<C: opcard::Client> VpcdCard for OpenPgpBadge<C> {
    fn atr(&self) -> &'static [u8] {
        ATR
    }
    fn reset(&mut self) {
        self.card.reset();
        self.apdu = Apdu::default();
    }
    fn respond(&mut self, command: &[u8]) -> Vec<u8> {
        self.apdu.process(&mut self.card, command)
    }
}

/// The station's software eMRTD chip; its answers fit short APDUs, so no GET RESPONSE.
struct Chip(SoftChip);

impl VpcdCard for Chip {
    fn atr(&self) -> &'static [u8] {
        CHIP_ATR
    }
    fn reset(&mut self) {
        self.0.reset();
    }
    fn respond(&mut self, command: &[u8]) -> Vec<u8> {
        self.0.respond(command)
    }
}

/// Insert `card` into vpcd's reader at `port` and answer vpcd until it closes the connection.
fn serve(card: &mut dyn VpcdCard, port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| {
        format!("cannot reach vpcd on 127.0.0.1:{port} (is pcscd running with vpcd?): {e}")
    })?;
    let _ = stream.set_nodelay(true);
    eprintln!("card ready");
    loop {
        let Some(msg) = receive(&mut stream).map_err(|e| format!("vpcd link: {e}"))? else {
            return Ok(());
        };
        match msg.as_slice() {
            [CTRL_ATR] => send(&mut stream, card.atr()).map_err(|e| format!("vpcd link: {e}"))?,
            [CTRL_OFF] | [CTRL_RESET] => card.reset(),
            [CTRL_ON] => {}
            [other] => eprintln!("tasjil-vcard: ignoring unknown vpcd control {other:#04x}"),
            command => {
                let response = card.respond(command);
                send(&mut stream, &response).map_err(|e| format!("vpcd link: {e}"))?;
            }
        }
    }
}

/// The transport-level APDU handling a card's operating system does before the application sees a
/// command: command chaining (CLA bit 0x10) and GET RESPONSE for answers longer than a short APDU.
#[derive(Default)]
struct Apdu {
    chained: Option<Command<COMMAND_LEN>>,
    pending: Vec<u8>,
}

impl Apdu {
    fn process<C: opcard::Client>(&mut self, card: &mut opcard::Card<C>, bytes: &[u8]) -> Vec<u8> {
        let view = match CommandView::try_from(bytes) {
            Ok(v) => v,
            Err(_) => return status(Status::WrongLength),
        };
        // GET RESPONSE: the next part of a long answer.
        if view.instruction() == iso7816::Instruction::GetResponse {
            let rest = std::mem::take(&mut self.pending);
            return self.answer(rest, view.extended);
        }
        self.pending.clear();
        if view.class().chain() == iso7816::command::class::Chain::NotTheLast {
            let r = match &mut self.chained {
                Some(c) => c.extend_from_command_view(view).map_err(|_| ()),
                None => view
                    .to_owned()
                    .map(|c| self.chained = Some(c))
                    .map_err(|_| ()),
            };
            return match r {
                Ok(()) => status(Status::Success),
                Err(()) => {
                    self.chained = None;
                    status(Status::WrongLength)
                }
            };
        }
        let mut reply = heapless::Vec::<u8, REPLY_LEN>::new();
        let handled = match self.chained.take() {
            Some(mut whole) => match whole.extend_from_command_view(view) {
                Ok(()) => card.handle(whole.as_view(), reply.as_mut_view()),
                Err(_) => Err(Status::WrongLength),
            },
            None => card.handle(view, reply.as_mut_view()),
        };
        match handled {
            Ok(()) => self.answer(reply.to_vec(), view.extended),
            Err(s) => status(s),
        }
    }

    /// Send `data` + 9000, or its first part + 61xx keeping the rest for GET RESPONSE.
    fn answer(&mut self, mut data: Vec<u8>, extended: bool) -> Vec<u8> {
        if extended || data.len() <= SHORT_LE {
            data.extend_from_slice(&<[u8; 2]>::from(Status::Success));
            return data;
        }
        self.pending = data.split_off(SHORT_LE);
        let left = u8::try_from(self.pending.len()).unwrap_or(0);
        data.extend_from_slice(&[0x61, left]);
        data
    }
}

fn status(s: Status) -> Vec<u8> {
    <[u8; 2]>::from(s).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ATR's check byte makes the XOR of T0..TCK zero.
    #[test]
    fn both_atrs_carry_a_right_check_byte() {
        for atr in [ATR, CHIP_ATR] {
            assert_eq!(atr[0], 0x3B);
            assert_eq!(atr[1..].iter().fold(0u8, |x, b| x ^ b), 0, "{atr:02X?}");
            // T0's low nibble counts the historical bytes: TS, T0, TD1, TD2, history, TCK.
            assert_eq!(atr.len(), 4 + usize::from(atr[1] & 0x0F) + 1, "{atr:02X?}");
        }
    }
}
