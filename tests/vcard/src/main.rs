//! `tasjil-vcard`: a virtual OpenPGP officer badge for the PC/SC tests.
//!
//! It runs the `opcard` OpenPGP card application on trussed's in-RAM software platform and
//! inserts it into vsmartcard's virtual reader (`vpcd`, part of pcscd's drivers), so the station's
//! real PC/SC badge backend talks to a real card implementation through a real pcscd.
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
//! Usage: `tasjil-vcard [--port N] [--serial HEX8]`. Prints `card ready` on stderr once connected.

use std::io::{Read, Write};
use std::net::TcpStream;

use iso7816::command::CommandView;
use iso7816::{Command, Status};

mod platform;

/// Answer to reset: T=1, with the historical bytes opcard's default options report (so the ATR
/// and the card's own capabilities agree); the last byte is the XOR check over T0..end.
const ATR: &[u8] = &[
    0x3B, 0x8A, 0x80, 0x01, 0x00, 0x31, 0xF5, 0x73, 0xC0, 0x01, 0x60, 0x00, 0x90, 0x00, 0x8D,
];

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

struct Args {
    port: u16,
    serial: [u8; 4],
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 35963,
        serial: [0x7A, 0x51, 0x00, 0x01],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--port" => args.port = value.parse().map_err(|e| format!("--port: {e}"))?,
            "--serial" => {
                let n = u32::from_str_radix(&value, 16).map_err(|e| format!("--serial: {e}"))?;
                args.serial = n.to_be_bytes();
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tasjil-vcard: {e}\nusage: tasjil-vcard [--port N] [--serial HEX8]");
            std::process::exit(2);
        }
    };
    let result = platform::with_card_client(|client| {
        let mut options = opcard::Options::default();
        options.serial = args.serial;
        // No touch button on a badge: signing needs the PIN only.
        options.button_available = false;
        let mut card = opcard::Card::new(client, options);
        serve(&mut card, args.port)
    });
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

fn serve<C: opcard::Client>(card: &mut opcard::Card<C>, port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| {
        format!("cannot reach vpcd on 127.0.0.1:{port} (is pcscd running with vpcd?): {e}")
    })?;
    let _ = stream.set_nodelay(true);
    eprintln!("card ready");
    let mut apdu = Apdu::default();
    loop {
        let Some(msg) = receive(&mut stream).map_err(|e| format!("vpcd link: {e}"))? else {
            return Ok(());
        };
        match msg.as_slice() {
            [CTRL_ATR] => send(&mut stream, ATR).map_err(|e| format!("vpcd link: {e}"))?,
            [CTRL_OFF] | [CTRL_RESET] => {
                card.reset();
                apdu = Apdu::default();
            }
            [CTRL_ON] => {}
            [other] => eprintln!("tasjil-vcard: ignoring unknown vpcd control {other:#04x}"),
            command => {
                let response = apdu.process(card, command);
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
