//! The centre's web console as central staff use it: the real `tasjil-central serve`, a real
//! headless Chromium driven through WebDriver (Debian's `chromium-driver`), real stations syncing
//! and carrying USB sticks. What is asserted is what the page shows (element text, images the
//! browser decoded), and what reaches the van afterwards.
//!
//! `TASJIL_WRITE_SCREENS=1` also writes the console's pages in French and Arabic to docs/screens/.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::centre_load::{approve_and_export, Serve};
use crate::common::{json_of, run, station_for, text, Central};

// ---------------------------------------------------------------------------------------------
// Plain HTTP with a cookie jar (for the refusals, where a browser would hide the status code)

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default, Clone)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn take(&mut self, resp: &Resp) {
        for (k, v) in &resp.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.0.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    self.0.push((name.to_string(), value.to_string()));
                }
            }
        }
    }
}

fn http(addr: &str, method: &str, path: &str, jar: &Jar, form: &[(&str, &str)]) -> Resp {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncookie: {}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        jar.header(),
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_in(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A staff account made with `staff add --json`; returns its TOTP secret.
fn add_staff(central: &Central, id: &str, role: &str, password: &str) -> Vec<u8> {
    let out = Command::new(crate::common::central_bin())
        .arg("--data-dir")
        .arg(&central.dir)
        .args(["staff", "add", "--id", id, "--role", role])
        .args(["--password-stdin", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(password.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "staff add: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uri = v["otpauth_uri"].as_str().unwrap();
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    base32_decode(secret)
}

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn code_now(secret: &[u8]) -> String {
    let now = tasjil_central::now_ms();
    format!(
        "{:06}",
        tasjil_central::staff::totp_code(secret, tasjil_central::staff::totp_step(now))
    )
}

/// Log in over plain HTTP; returns the jar holding the session.
fn login(addr: &str, id: &str, password: &str, code: &str) -> (Resp, Jar) {
    let mut jar = Jar::default();
    let form = http(addr, "GET", "/console/login", &jar, &[]);
    assert_eq!(form.status, 200, "{}", form.body);
    jar.take(&form);
    let csrf = csrf_in(&form.body);
    let resp = http(
        addr,
        "POST",
        "/console/login",
        &jar,
        &[
            ("csrf", &csrf),
            ("id", id),
            ("password", password),
            ("code", code),
        ],
    );
    jar.take(&resp);
    (resp, jar)
}

fn access_entries(central: &Central) -> Vec<Value> {
    let (code, v) = central.json(&["access-log"]);
    assert_eq!(code, 0, "{v}");
    v["entries"].as_array().cloned().unwrap_or_default()
}

/// A centre with one station that synced `n` records; returns (centre, station dir, record ids).
fn centre_with_records(tmp: &Path, station_id: &str, n: u32) -> (Central, PathBuf) {
    let central = Central::init(&tmp.join("centre"));
    let station = station_for(&central, &tmp.join(station_id), station_id);
    crate::common::enrol_in(&station, n, 7);
    (central, station)
}

fn sync(station: &Path, url: &str) -> (i32, Value) {
    json_of(station, &["sync", "--central", url])
}

fn first_ids(central: &Central, station: &str) -> Vec<String> {
    let (_, list) = central.json(&["list"]);
    list["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["station"] == station)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn console_refuses_what_sessions_tokens_and_roles_do_not_allow() {
    let tmp = tempfile::tempdir().unwrap();
    let (central, station) = centre_with_records(tmp.path(), "VAN-REF", 1);
    let viewer = add_staff(&central, "vera", "viewer", "viewer-password-1");
    let _locked = add_staff(&central, "lina", "verifier", "verifier-password-1");
    let serve = Serve::start(&central);
    let url = format!("http://{}", serve.addr);
    let (code, v) = sync(&station, &url);
    assert_eq!(code, 0, "{v}");
    let id = first_ids(&central, "VAN-REF").remove(0);
    let addr = serve.addr.as_str();
    let record = format!("/console/records/VAN-REF/{id}");

    // No session: to the login page, and nothing is opened.
    let none = Jar::default();
    let r = http(addr, "GET", "/console/overview", &none, &[]);
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/login"))
    );
    let r = http(
        addr,
        "POST",
        &format!("{record}/open"),
        &none,
        &[("preset", "reason-quality")],
    );
    assert_eq!(
        r.status, 303,
        "a post without a session is sent to the login page"
    );
    assert!(access_entries(&central).is_empty());

    // Every page is locked down: a policy without script, no caching, cookies the page's script
    // (there is none) could not read, sent only to this site over a secure context.
    let (r, jar) = login(addr, "vera", "viewer-password-1", &code_now(&viewer));
    assert_eq!(r.status, 303, "viewer login: {}", r.body);
    let set_cookie = r
        .headers
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("tasjil_session="))
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(set_cookie.contains(flag), "{set_cookie} lacks {flag}");
    }
    let page = http(addr, "GET", &record, &jar, &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(
        !page.body.contains("/open\""),
        "a viewer's record page offers no opening"
    );
    assert!(!page.body.contains("<script"), "the console has no script");

    // A viewer who forges the form anyway: 403, and no access-log entry is written.
    let csrf = csrf_in(&page.body);
    let r = http(
        addr,
        "POST",
        &format!("{record}/open"),
        &jar,
        &[("csrf", &csrf), ("preset", "reason-quality")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        access_entries(&central).is_empty(),
        "no entry for a refused opening"
    );

    // A bad CSRF token is refused before the role is even considered; the station stays active.
    let revoke = "/console/stations/VAN-REF/state";
    let r = http(
        addr,
        "POST",
        revoke,
        &jar,
        &[
            ("csrf", "0".repeat(64).as_str()),
            ("action", "revoke"),
            ("reason", "x"),
        ],
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("jeton"), "{}", r.body);
    let r = http(
        addr,
        "POST",
        revoke,
        &jar,
        &[("csrf", &csrf), ("action", "revoke"), ("reason", "x")],
    );
    assert_eq!(r.status, 403, "a viewer cannot revoke");
    let (_, list) = central.json(&["station", "list"]);
    assert_eq!(list["stations"][0]["state"], "active", "{list}");

    // Five wrong second factors lock the account; the right one is then refused too.
    for round in 1..=5 {
        let (r, _) = login(addr, "lina", "verifier-password-1", "000000");
        assert_eq!(r.status, 401, "round {round}");
        if round == 5 {
            assert!(r.body.contains("verrouillé"), "{}", r.body);
        }
    }
    let (r, _) = login(addr, "lina", "verifier-password-1", &code_now(&_locked));
    assert_eq!(r.status, 401);
    assert!(r.body.contains("verrouillé"), "{}", r.body);

    // Logging out ends the session on the server, not just in the browser.
    let page = http(addr, "GET", "/console/overview", &jar, &[]);
    let csrf = csrf_in(&page.body);
    let r = http(addr, "POST", "/console/logout", &jar, &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    let r = http(addr, "GET", "/console/overview", &jar, &[]);
    assert_eq!(r.status, 303, "the old session cookie no longer works");
}

// ---------------------------------------------------------------------------------------------
// WebDriver

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// Headless Chromium through chromedriver, or `None` (with a loud banner) where they are
    /// missing; with `CI=true` a missing browser fails the test instead.
    fn start() -> Option<Browser> {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(driver_bin) = driver_bin.filter(|_| Path::new("/usr/bin/chromium").exists())
        else {
            let msg = "chromium / chromium-driver are not installed (scripts/install-deps)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("\n========== SKIPPED: console browser test: {msg} ==========\n");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.call("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1366,768",
                         "--no-first-run", "--disable-extensions"]
            }
        }}});
        let v = b.call("POST", "/session", Some(caps)).unwrap();
        b.session = v["sessionId"].as_str().unwrap().to_string();
        Some(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let addr = format!("127.0.0.1:{}", self.port);
        let mut s = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        // chromedriver may keep the connection open: read the head, then exactly the body.
        let mut reader = std::io::BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            use std::io::BufRead;
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                break;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let lower = head.to_ascii_lowercase();
        let body = if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            let mut buf = vec![0u8; len];
            reader.read_exact(&mut buf).map_err(|e| e.to_string())?;
            String::from_utf8_lossy(&buf).into_owned()
        } else if lower.contains("transfer-encoding: chunked") {
            let mut out = Vec::new();
            loop {
                use std::io::BufRead;
                let mut size = String::new();
                reader.read_line(&mut size).map_err(|e| e.to_string())?;
                let n = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
                let mut chunk = vec![0u8; n + 2];
                reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
            String::from_utf8_lossy(&out).into_owned()
        } else {
            let mut rest = String::new();
            reader
                .read_to_string(&mut rest)
                .map_err(|e| e.to_string())?;
            rest
        };
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if !head.contains(" 200 ") {
            return Err(v.to_string());
        }
        Ok(v["value"].clone())
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{what}", self.session), body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {what}: {e}"))
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        // A click that submits a form returns before the next page is in: wait for it.
        let deadline = Instant::now() + Duration::from_secs(15);
        let found = loop {
            let found = self.call(
                "POST",
                &format!("/session/{}/element", self.session),
                Some(json!({"using": "css selector", "value": css})),
            );
            if found.is_ok() || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        match found {
            Ok(v) => v[ELEMENT].as_str().unwrap().to_string(),
            Err(_) => {
                // Say what the page shows instead, so a failure explains itself.
                let shown = self.eval("return location.pathname + '\\n' + document.body.innerText");
                panic!(
                    "no element {css} on the page, which shows:\n{}",
                    shown.as_str().unwrap_or("")
                );
            }
        }
    }

    fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Clicks like a person. A click on a button or a link loads the next page (the console
    /// has no script): wait until the old page is gone, so what is read next is the new page
    /// and never an element of the old one.
    fn click(&self, css: &str) {
        let e = self.find(css);
        let tag = self.cmd("GET", &format!("/element/{e}/name"), None);
        let navigates = matches!(tag.as_str(), Some("button") | Some("a"));
        if navigates {
            self.eval("window.__tasjilOldPage = true; return null");
        }
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
        if navigates {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                // A script run while the next page replaces this one can fail: try again.
                let old = self
                    .call(
                        "POST",
                        &format!("/session/{}/execute/sync", self.session),
                        Some(
                            json!({"script": "return window.__tasjilOldPage === true", "args": []}),
                        ),
                    )
                    .map(|v| v == json!(true))
                    .unwrap_or(true);
                if !old {
                    break;
                }
                if Instant::now() > deadline {
                    panic!("clicking {css} did not load a page within 15 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The text a person sees in the element (rendered, not the markup).
    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
    }

    fn login(&self, base: &str, id: &str, password: &str, secret: &[u8]) {
        self.goto(&format!("{base}/console/login"));
        self.type_in("#id", id);
        self.type_in("#password", password);
        self.type_in("#code", &code_now(secret));
        self.click("#login");
        let me = self.text("#me");
        assert!(
            me.contains(id),
            "after login the top bar names {id}: {me:?}"
        );
    }

    fn logout(&self) {
        self.click("form.who button");
        self.find("#login");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Screens of the console: to the test's folder always, to docs/screens/ when asked.
struct Screens {
    dir: PathBuf,
    docs: Option<PathBuf>,
}

impl Screens {
    fn new(tmp: &Path) -> Screens {
        let dir = tmp.join("screens");
        std::fs::create_dir_all(&dir).unwrap();
        let docs = std::env::var_os("TASJIL_WRITE_SCREENS")
            .map(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screens"));
        Screens { dir, docs }
    }

    fn take(&self, b: &Browser, name: &str) {
        let path = self.dir.join(format!("{name}.png"));
        b.screenshot(&path);
        if let Some(docs) = &self.docs {
            std::fs::copy(&path, docs.join(format!("console-{name}.png"))).unwrap();
        }
    }
}

#[test]
fn central_staff_work_in_a_real_browser_and_their_decisions_reach_the_vans() {
    let Some(b) = Browser::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (central, van_a) = centre_with_records(tmp.path(), "VAN-A", 2);
    let van_b = station_for(&central, &tmp.path().join("VAN-B"), "VAN-B");
    crate::common::enrol_in(&van_b, 1, 9);
    let amina = add_staff(&central, "amina", "verifier", "verifier-password-1");
    let issa = add_staff(&central, "issa", "issuer", "issuer-password-1");
    let admin = add_staff(&central, "admin1", "admin", "admin-password-1");
    let serve = Serve::start(&central);
    let base = format!("http://{}", serve.addr);

    // Van A syncs; van B's supervisor brings a stick.
    let (code, v) = sync(&van_a, &base);
    assert_eq!(code, 0, "{v}");
    let usb = tmp.path().join("usb");
    let bundle = approve_and_export(&van_b, &usb);
    let receipt1 = tmp.path().join("receipt1.json");
    let (code, v) = central.json(&[
        "import",
        &bundle,
        "--receipt-out",
        receipt1.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    let a_ids = first_ids(&central, "VAN-A");
    let b_ids = first_ids(&central, "VAN-B");
    assert_eq!((a_ids.len(), b_ids.len()), (2, 1));
    let shots = Screens::new(tmp.path());

    // A verifier logs in with the second factor and sees the overview.
    b.login(&base, "amina", "verifier-password-1", &amina);
    assert!(b.text("h1").contains("Vue d'ensemble"));
    let cards = b.text("ul.cards");
    assert!(cards.contains("Vérifiés"), "{cards}");
    let verified_card = b.text("ul.cards li:nth-child(3) .n");
    assert_eq!(verified_card, "3", "3 records verified: {cards}");
    let stations = b.text("#stations");
    assert!(
        stations.contains("VAN-A") && stations.contains("réseau"),
        "{stations}"
    );
    assert!(
        stations.contains("VAN-B") && stations.contains("clé USB"),
        "{stations}"
    );

    // The records list never shows personal data; the record page opens with a reason.
    b.goto(&format!("{base}/console/records?station=VAN-A"));
    let rows = b.text("#records");
    assert!(
        rows.contains(&a_ids[0]) && !rows.contains(&b_ids[0]),
        "{rows}"
    );
    b.goto(&format!("{base}/console/records/VAN-A/{}", a_ids[0]));
    assert!(b
        .eval("return document.getElementById('personal') === null")
        .as_bool()
        .unwrap());
    b.click("#preset option[value='reason-quality']");
    b.type_in("#reason", "operator training review");
    b.click("#open");
    let logged = b.text("#logged");
    assert!(logged.contains("journal"), "{logged}");
    let face_w = b.eval("return document.getElementById('face').naturalWidth");
    assert!(
        face_w.as_u64().unwrap() > 100,
        "the browser decoded the face: {face_w}"
    );
    let fingers = b.eval(
        "return Array.from(document.querySelectorAll('img.finger')).filter(i => i.naturalWidth > 100).length",
    );
    assert_eq!(
        fingers.as_u64(),
        Some(10),
        "ten fingerprints decoded from WSQ and shown"
    );
    let strokes = b.eval("return document.querySelectorAll('#sig path').length");
    assert!(
        strokes.as_u64().unwrap() >= 1,
        "the signature's strokes are drawn"
    );
    let entries = access_entries(&central);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["who"], "amina");
    assert_eq!(entries[0]["action"], "open");
    assert_eq!(entries[0]["record"], a_ids[0].as_str());
    assert_eq!(entries[0]["station"], "VAN-A");
    assert!(
        entries[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Quality review: operator training review"),
        "{entries:?}"
    );
    b.logout();

    // An issuer asks for a new enrolment of one citizen of each van, from the record page.
    b.login(&base, "issa", "issuer-password-1", &issa);
    for (station, id) in [("VAN-A", &a_ids[0]), ("VAN-B", &b_ids[0])] {
        b.goto(&format!("{base}/console/records/{station}/{id}"));
        b.click("#iss-status option[value='reenrol']");
        b.click("#iss-preset option[value='rr-photo']");
        b.type_in("#iss-reason", "eyes closed");
        b.click("#iss-save");
        let msg = b.text("#message");
        assert!(msg.contains("prochaine synchronisation"), "{msg}");
        let status = b.text("#status");
        assert!(status.contains("réenrôlement nécessaire"), "{status}");
    }
    // And marks the other of van A's records accepted for production from the list, in bulk.
    b.goto(&format!(
        "{base}/console/records?station=VAN-A&status=awaiting"
    ));
    b.click(&format!("input[value='VAN-A/{}']", a_ids[1]));
    b.click("fieldset select option[value='accepted']");
    b.click("fieldset button");
    assert!(b.text("#message").contains("(1)"));
    b.logout();

    // The statuses reach van A at its next sync...
    let (code, v) = sync(&van_a, &base);
    assert_eq!(code, 0, "{v}");
    let (_, status) = json_of(&van_a, &["status"]);
    assert_eq!(status["reenrol"], 1, "{status}");
    assert_eq!(status["accepted"], 1, "{status}");
    let reason = status["reenrol_needed"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("Photo non conforme") && reason.contains("eyes closed"),
        "{reason}"
    );
    let human = text(&run(&van_a, &["status"]));
    assert!(human.contains(&format!("RE-ENROL {}", a_ids[0])), "{human}");

    // ...and van B's in the receipt of its next stick.
    crate::common::enrol_in(&van_b, 1, 11);
    let bundle = approve_and_export(&van_b, &tmp.path().join("usb2"));
    let receipt2 = tmp.path().join("receipt2.json");
    let (code, v) = central.json(&[
        "import",
        &bundle,
        "--receipt-out",
        receipt2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = json_of(&van_b, &["receipt", "import", receipt2.to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
    let (_, status) = json_of(&van_b, &["status"]);
    assert_eq!(status["reenrol"], 1, "{status}");
    assert_eq!(status["reenrol_needed"][0]["id"], b_ids[0].as_str());

    // An admin revokes van A from the console; its next sync is refused, saying so.
    b.login(&base, "admin1", "admin-password-1", &admin);
    b.goto(&format!("{base}/console/stations"));
    b.type_in(
        "#station-VAN-A input[name='reason']",
        "van stolen at Tafraout market",
    );
    b.click("#station-VAN-A button[value='revoke']");
    assert!(b.text("#message").contains("VAN-A"));
    let row = b.text("#station-VAN-A");
    assert!(
        row.contains("révoquée") && row.contains("Tafraout"),
        "{row}"
    );
    crate::common::enrol_in(&van_a, 1, 13);
    let out = run(&van_a, &["sync", "--central", &base]);
    assert!(!out.status.success(), "a revoked van is refused");
    let said = text(&out);
    assert!(
        said.contains("revoked") && said.contains("Tafraout"),
        "{said}"
    );

    // The access log, as the admin reads it: verified, and naming the opening.
    b.goto(&format!("{base}/console/access-log"));
    assert!(b.text("#chain").contains("vérifiées"));
    let log = b.text("#access");
    assert!(log.contains("amina") && log.contains(&a_ids[0]), "{log}");

    // The pages in French and Arabic (right to left), as a person sees them.
    for lang in ["fr", "ar"] {
        b.goto(&format!(
            "{base}/console/lang?to={lang}&back=/console/overview"
        ));
        let dir = b.eval("return document.documentElement.dir");
        assert_eq!(dir, if lang == "ar" { "rtl" } else { "ltr" });
        shots.take(&b, &format!("01-overview-{lang}"));
        b.goto(&format!("{base}/console/stations"));
        shots.take(&b, &format!("02-stations-{lang}"));
        b.goto(&format!("{base}/console/batches"));
        shots.take(&b, &format!("03-batches-{lang}"));
        b.goto(&format!("{base}/console/records"));
        shots.take(&b, &format!("04-records-{lang}"));
        b.goto(&format!("{base}/console/records/VAN-B/{}", b_ids[0]));
        b.click("#preset option[value='reason-citizen']");
        b.click("#open");
        b.find("#face");
        b.eval("document.getElementById('personal').scrollIntoView(); return true");
        shots.take(&b, &format!("05-record-{lang}"));
        b.goto(&format!("{base}/console/access-log"));
        shots.take(&b, &format!("06-access-log-{lang}"));
    }
    let overview_ar = b.eval("return document.querySelector('h1').textContent");
    assert_eq!(overview_ar, "سجل الاطلاع على البيانات الشخصية");
    b.logout();
    b.goto(&format!("{base}/console/login"));
    shots.take(&b, "00-login-ar");
    b.goto(&format!("{base}/console/lang?to=fr&back=/console/login"));
    shots.take(&b, "00-login-fr");
    assert_eq!(std::fs::read_dir(&shots.dir).unwrap().count(), 14);
    assert_eq!(
        access_entries(&central).len(),
        3,
        "one opening by the verifier, two by the admin"
    );
}

/// The simulated badge's key for `id` (what `tasjil badge status --json` prints for a card).
fn sim_key(id: &str) -> String {
    use tasjil::enrolment::OfficerBadge;
    tasjil::enrolment::badge::SimBadge::unlock(id, tasjil::enrolment::badge::SIM_PIN)
        .unwrap()
        .public_key_hex()
}

fn roster_list(central: &Central) -> Value {
    let (code, v) = central.json(&["roster", "list"]);
    assert_eq!(code, 0, "{v}");
    v
}

#[test]
fn an_admin_keeps_the_roster_and_releases_a_held_record_in_a_real_browser() {
    let Some(b) = Browser::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let van = station_for(&central, &tmp.path().join("VAN-H"), "VAN-H");
    let root = add_staff(&central, "root", "admin", "admin-password-1");
    let vera = add_staff(&central, "vera", "viewer", "viewer-password-1");
    // A second admin for plain HTTP: a TOTP code is good once, and the browser used root's.
    let ops = add_staff(&central, "ops", "admin", "admin-password-2");
    let serve = Serve::start(&central);
    let base = format!("http://{}", serve.addr);
    let shots = Screens::new(tmp.path());
    let key = sim_key("OFF-H");

    // The admin opens the roster page from the navigation: nothing issued yet.
    b.login(&base, "root", "admin-password-1", &root);
    b.click("nav a[href='/console/roster']");
    assert!(b.text("h1").contains("Registre des badges"));
    assert!(b.text("#empty").contains("Aucune version"));

    // A badge key that is not 64 hex digits is refused with words, and the form is kept.
    b.type_in("#r-id", "OFF-H");
    b.type_in("#r-name", "Hafsa Ouali");
    b.type_in("#r-badge", "not-a-key");
    b.type_in("#r-stations", "VAN-H");
    b.click("#r-add");
    let error = b.text("#error");
    assert!(
        error.contains("n'a pas été modifié") && error.contains("64 chiffres"),
        "{error}"
    );
    let kept = b.eval("return document.getElementById('r-id').value");
    assert_eq!(kept, "OFF-H", "the form keeps what was typed");
    assert_eq!(roster_list(&central)["version"], Value::Null);

    // The right key: version 1 is issued and listed, shortened, with its stations.
    b.type_in("#r-badge", &key);
    b.click("#r-role option[value='officer']");
    b.click("#r-add");
    let msg = b.text("#message");
    assert!(
        msg.contains("nouvelle version") && msg.contains("1"),
        "{msg}"
    );
    let row = b.text("#officer-OFF-H");
    assert!(
        row.contains("Hafsa Ouali")
            && row.contains("agent d'enrôlement")
            && row.contains(&format!("{}…", &key[..16]))
            && row.contains("VAN-H")
            && row.contains("sans fin"),
        "{row}"
    );
    assert!(b.text("#version").contains('1'));
    let listed = roster_list(&central);
    assert_eq!(listed["version"], 1, "{listed}");
    assert_eq!(listed["entries"][0]["id"], "OFF-H");
    assert_eq!(listed["entries"][0]["badge"], key.as_str());
    assert_eq!(listed["entries"][0]["stations"], json!(["VAN-H"]));

    // The van takes version 1 at its sync; OFF-H enrols and the record is verified.
    let (code, v) = sync(&van, &base);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["roster_updated"], true, "{v}");
    crate::common::enrol_as(&van, "OFF-H", 1, 3);
    let (code, v) = sync(&van, &base);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["acknowledged"], 1, "{v}");

    // The admin revokes the badge from the page, with a reason: version 2.
    b.type_in(
        "#officer-OFF-H input[name='reason']",
        "badge lost at Tiznit souk",
    );
    b.click("#officer-OFF-H button");
    let msg = b.text("#message");
    assert!(msg.contains("révoqué") && msg.contains("2"), "{msg}");
    let row = b.text("#officer-OFF-H");
    assert!(
        row.contains("révoqué le") && row.contains("Tiznit"),
        "{row}"
    );
    let listed = roster_list(&central);
    assert_eq!(listed["version"], 2, "{listed}");
    assert_eq!(
        listed["entries"][0]["revoked"]["reason"],
        "badge lost at Tiznit souk"
    );
    // The revoked badge cannot be put back, and the page says why.
    b.type_in("#r-id", "OFF-H");
    b.type_in("#r-name", "Hafsa Ouali");
    b.type_in("#r-badge", &key);
    b.type_in("#r-stations", "*");
    b.click("#r-add");
    let error = b.text("#error");
    assert!(error.contains("stays revoked"), "{error}");
    assert_eq!(roster_list(&central)["version"], 2);
    for lang in ["ar", "fr"] {
        b.goto(&format!(
            "{base}/console/lang?to={lang}&back=/console/roster"
        ));
        shots.take(&b, &format!("07-roster-{lang}"));
    }

    // The van had not heard of the revocation: what OFF-H co-signs now is held at the centre.
    crate::common::enrol_as(&van, "OFF-H", 2, 5);
    let (code, v) = sync(&van, &base);
    assert_eq!(
        code, 1,
        "a sync with a refused record says so in its exit code: {v}"
    );
    let refused = v["rejected"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{v}");
    for r in refused {
        assert!(r["reason"].as_str().unwrap().contains("revoked"), "{v}");
    }
    let held_id = refused[0]["id"].as_str().unwrap().to_string();
    let other_id = refused[1]["id"].as_str().unwrap().to_string();
    let human = text(&run(&van, &["status"]));
    assert!(human.contains(&format!("REJECTED {held_id}")), "{human}");

    // A viewer sees the roster but every change is refused, whatever the form says.
    let (r, jar) = login(&serve.addr, "vera", "viewer-password-1", &code_now(&vera));
    assert_eq!(r.status, 303, "viewer login: {}", r.body);
    let page = http(&serve.addr, "GET", "/console/roster", &jar, &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("OFF-H") && page.body.contains("Tiznit"));
    assert!(
        !page.body.contains("/revoke\"") && !page.body.contains("id=\"roster-add\""),
        "a viewer's page offers no change"
    );
    let csrf = csrf_in(&page.body);
    for (path, form) in [
        (
            "/console/roster".to_string(),
            vec![
                ("csrf", csrf.as_str()),
                ("id", "OFF-Z"),
                ("name", "Z"),
                ("role", "supervisor"),
                ("badge", &key),
                ("stations", "*"),
            ],
        ),
        (
            "/console/roster/OFF-H/revoke".to_string(),
            vec![("csrf", csrf.as_str()), ("reason", "x")],
        ),
        (
            format!("/console/records/VAN-H/{held_id}/held"),
            vec![
                ("csrf", csrf.as_str()),
                ("action", "release"),
                ("reason", "x"),
            ],
        ),
    ] {
        let r = http(&serve.addr, "POST", &path, &jar, &form);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    assert_eq!(roster_list(&central)["version"], 2, "nothing was issued");
    // An admin's revocation without a reason is refused too (400, with words).
    let (r, jar) = login(&serve.addr, "ops", "admin-password-2", &code_now(&ops));
    assert_eq!(r.status, 303);
    let page = http(&serve.addr, "GET", "/console/roster", &jar, &[]);
    let r = http(
        &serve.addr,
        "POST",
        "/console/roster/OFF-H/revoke",
        &jar,
        &[("csrf", &csrf_in(&page.body)), ("reason", "  ")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("indiquez pourquoi"), "{}", r.body);

    // The admin finds the held record in the list and releases it with a reason.
    b.goto(&format!("{base}/console/records?status=held"));
    let rows = b.text("#records");
    assert!(rows.contains(&held_id) && rows.contains("retenu"), "{rows}");
    b.click(&format!("#records a[href$='{held_id}']"));
    let status = b.text("#status");
    assert!(
        status.contains("retenu") && status.contains("revoked"),
        "a held record says why next to its status: {status}"
    );
    b.eval("document.getElementById('held').scrollIntoView(); return true");
    shots.take(&b, "08-record-held-fr");
    b.type_in(
        "#held-reason",
        "enrolled an hour after the loss was reported; supervisor confirmed the officer",
    );
    b.click("#held-release");
    let msg = b.text("#message");
    assert!(msg.contains("libéré"), "{msg}");
    let status = b.text("#status");
    assert!(
        status.contains("vérifié") && !status.contains("retenu"),
        "{status}"
    );
    let decision = b.text("#held-decision");
    assert!(
        decision.contains("libéré par root") && decision.contains("supervisor confirmed"),
        "{decision}"
    );
    shots.take(&b, "09-record-released-fr");
    let (_, list) = central.json(&["list"]);
    let record = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == held_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(record["status"], "verified", "{record}");

    // The other one is rejected, with its reason; it shows under "rejected", not "held".
    b.goto(&format!("{base}/console/records/VAN-H/{other_id}"));
    b.type_in("#held-reason", "no supervisor can vouch for this enrolment");
    b.click("#held-reject");
    assert!(b.text("#message").contains("refusé"));
    let status = b.text("#status");
    assert!(
        status.contains("refusé") && !status.contains("retenu"),
        "{status}"
    );
    assert!(b.text("#held-decision").contains("refusé par root"));
    b.goto(&format!("{base}/console/records?status=held"));
    assert!(
        b.text("#empty").contains("Aucun dossier"),
        "no record is held any more"
    );
    b.goto(&format!("{base}/console/records?status=rejected"));
    let rows = b.text("#records");
    assert!(
        rows.contains(&other_id) && !rows.contains(&held_id),
        "{rows}"
    );

    // The van's next sync brings the signed verdicts: the released record is acknowledged, the
    // rejected one stays rejected. (Its staff reason is in the signed ledger verdict; the sync's
    // status answer does not carry it yet: docs/ARCHITECTURE.md, held records.)
    let (code, v) = sync(&van, &base);
    assert_eq!(code, 1, "{v}");
    let human = text(&run(&van, &["status"]));
    assert!(!human.contains(&format!("REJECTED {held_id}")), "{human}");
    assert!(human.contains(&format!("REJECTED {other_id}")), "{human}");
    let conn = rusqlite::Connection::open(van.join("station.db")).unwrap();
    let ack: Option<i64> = conn
        .query_row(
            "SELECT acknowledged_ms FROM envelopes WHERE id = ?1",
            [&held_id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        ack.is_some(),
        "the released record is acknowledged at the van"
    );
}

/// A van without network: its record held at the centre, released by an admin, is acknowledged
/// from the receipt of its next stick (the record travels again, being unacknowledged).
#[test]
fn a_held_record_released_in_the_console_reaches_a_van_by_usb_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::init(&tmp.path().join("centre"));
    let van = station_for(&central, &tmp.path().join("VAN-U"), "VAN-U");
    let ops = add_staff(&central, "ops", "admin", "admin-password-2");
    for (id, role) in [("OFF-U", "officer"), ("SUP-SIM-1", "supervisor")] {
        let out = central.run(&[
            "roster",
            "add",
            "--id",
            id,
            "--name",
            id,
            "--role",
            role,
            "--badge",
            &sim_key(id),
            "--stations",
            "VAN-U",
        ]);
        assert!(out.status.success(), "roster add: {}", text(&out));
    }
    let file = tmp.path().join("roster.json");
    let out = central.run(&["roster", "export", "--out", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&van, &["roster", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = central.run(&["roster", "revoke", "OFF-U", "--reason", "officer left"]);
    assert!(out.status.success(), "{}", text(&out));
    // The van has not heard of the revocation yet.
    crate::common::enrol_as(&van, "OFF-U", 1, 3);
    let bundle = approve_and_export(&van, &tmp.path().join("usb1"));
    let receipt = tmp.path().join("receipt1.json");
    let out = central.run(&[
        "import",
        &bundle,
        "--receipt-out",
        receipt.to_str().unwrap(),
    ]);
    assert!(text(&out).contains("revoked"), "{}", text(&out));
    let out = run(&van, &["receipt", "import", receipt.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a receipt with a refusal: {}",
        text(&out)
    );
    let (_, list) = central.json(&["list"]);
    let id = list["records"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["records"][0]["status"], "held", "{list}");
    assert!(text(&run(&van, &["status"])).contains(&format!("REJECTED {id}")));

    // An admin releases it from the record page.
    let serve = Serve::start(&central);
    let (r, jar) = login(&serve.addr, "ops", "admin-password-2", &code_now(&ops));
    assert_eq!(r.status, 303, "{}", r.body);
    let record = format!("/console/records/VAN-U/{id}");
    let page = http(&serve.addr, "GET", &record, &jar, &[]);
    assert!(page.body.contains("id=\"held-release\""), "{}", page.body);
    let r = http(
        &serve.addr,
        "POST",
        &format!("{record}/held"),
        &jar,
        &[
            ("csrf", &csrf_in(&page.body)),
            ("action", "release"),
            (
                "reason",
                "the officer left after this enrolment; checked with HR",
            ),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Dossier libéré"), "{}", r.body);
    drop(serve);

    // The next stick carries the record again; its receipt says verified and the van
    // acknowledges it.
    let bundle = approve_and_export(&van, &tmp.path().join("usb2"));
    let receipt = tmp.path().join("receipt2.json");
    let (code, v) = central.json(&[
        "import",
        &bundle,
        "--receipt-out",
        receipt.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    let out = run(&van, &["receipt", "import", receipt.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let human = text(&run(&van, &["status"]));
    assert!(!human.contains("REJECTED"), "{human}");
    let conn = rusqlite::Connection::open(van.join("station.db")).unwrap();
    let ack: Option<i64> = conn
        .query_row(
            "SELECT acknowledged_ms FROM envelopes WHERE id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(ack.is_some(), "acknowledged from the USB receipt");
}

/// The station's supervisor rejects one record and holds another (`tasjil reject` / `hold`): the
/// export carries the rejected record's envelope but never its sealed payload, the centre keeps it
/// in the chain as withdrawn, never issuable, and its console shows the supervisor's reason; the
/// van hears "rejected" with that reason; the held record leaves only once approved, and the chain
/// goes on after the rejected one.
#[test]
fn a_record_rejected_at_the_van_is_not_exported_and_the_centre_shows_why() {
    use tasjil_sync::bundle::{BundleReader, PartKind};
    let tmp = tempfile::tempdir().unwrap();
    let (central, van) = centre_with_records(tmp.path(), "VAN-R", 3);
    let ops = add_staff(&central, "ops", "viewer", "viewer-password-7");
    let (_, list) = json_of(&van, &["list"]);
    let ids: Vec<String> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{list}");
    let pin = "123456\n";
    let why = "photo of another person";

    // A rejection needs a reason; a wrong PIN does nothing.
    let out = crate::common::run_with_input(
        &van,
        &["reject", &ids[1], "--reason", " ", "--pin-stdin"],
        pin,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("needs a reason"), "{}", text(&out));
    let out = crate::common::run_with_input(
        &van,
        &["reject", &ids[1], "--reason", why, "--pin-stdin"],
        "000000\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = crate::common::run_with_input(
        &van,
        &["reject", &ids[1], "--reason", why, "--pin-stdin", "--json"],
        pin,
    );
    assert!(out.status.success(), "reject: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rejected"], 1, "{v}");
    assert_eq!(v["reason"], why, "{v}");
    // Final: not approvable, not rejectable twice.
    let out = crate::common::run_with_input(&van, &["approve", &ids[1], "--pin-stdin"], pin);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("rejected by a supervisor"),
        "{}",
        text(&out)
    );
    let out = crate::common::run_with_input(
        &van,
        &["reject", &ids[1], "--reason", why, "--pin-stdin"],
        pin,
    );
    assert!(text(&out).contains("already rejected"), "{}", text(&out));
    let out = crate::common::run_with_input(
        &van,
        &[
            "hold",
            &ids[2],
            "--reason",
            "document to check",
            "--pin-stdin",
        ],
        pin,
    );
    assert!(out.status.success(), "hold: {}", text(&out));
    let (_, list) = json_of(&van, &["list"]);
    assert_eq!(list["records"][1]["review"], "withdrawn", "{list}");
    assert_eq!(list["records"][1]["review_reason"], why, "{list}");
    assert_eq!(list["records"][1]["reviewed_by"], "SUP-SIM-1", "{list}");
    assert_eq!(list["records"][2]["review"], "on_hold", "{list}");
    // Both decisions are in the station's audit chain, and it still verifies.
    let (code, v) = json_of(&van, &["verify"]);
    assert_eq!(code, 0, "{v}");
    let db = rusqlite::Connection::open(van.join("station.db")).unwrap();
    let actions: Vec<String> = db
        .prepare("SELECT entry FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|e| {
            let v: Value = serde_json::from_slice(&e.unwrap()).unwrap();
            v["action"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert!(actions.contains(&"reject".to_string()), "{actions:?}");
    assert!(actions.contains(&"hold".to_string()), "{actions:?}");
    drop(db);

    // "Approve all" leaves the held record; the export stops there.
    let bundle = approve_and_export(&van, &tmp.path().join("usb1"));
    let mut reader = BundleReader::open(std::path::Path::new(&bundle)).unwrap();
    let parts = reader.header().manifest.parts.clone();
    let envelopes: Vec<&str> = parts
        .iter()
        .filter(|p| p.kind == PartKind::Envelope)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(envelopes, [ids[0].as_str(), ids[1].as_str()], "{parts:?}");
    let payloads = parts.iter().filter(|p| p.kind == PartKind::Payload).count();
    assert_eq!(
        payloads, 1,
        "the rejected record's payload stays on the van: {parts:?}"
    );
    let rejected_payload = {
        let env = reader.read_part(1).unwrap();
        let env = tasjil_sync::Envelope::<tasjil_sync::Signed>::from_bytes(&env).unwrap();
        env.body().payload.sha256.clone()
    };
    assert!(parts.iter().all(|p| p.name != rejected_payload));
    drop(reader);

    let receipt = tmp.path().join("receipt1.json");
    let out = central.run(&[
        "import",
        &bundle,
        "--receipt-out",
        receipt.to_str().unwrap(),
    ]);
    assert!(text(&out).contains(why), "{}", text(&out));
    let (_, clist) = central.json(&["list"]);
    let status_of = |id: &str| {
        clist["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["status"].clone())
    };
    assert_eq!(status_of(&ids[0]), Some(json!("verified")), "{clist}");
    assert_eq!(status_of(&ids[1]), Some(json!("withdrawn")), "{clist}");
    let (_, stats) = central.json(&["stats"]);
    assert_eq!(stats["verified"], 1, "{stats}");
    assert_eq!(stats["rejected"], 1, "{stats}");
    // The centre holds no payload of it at all.
    let blobs = crate::common::files(&central.dir);
    assert!(
        blobs
            .iter()
            .all(|f| !f.to_string_lossy().contains(&rejected_payload)),
        "{blobs:?}"
    );

    // The console's record page shows the rejection and the supervisor's reason.
    let serve = Serve::start(&central);
    let (r, jar) = login(&serve.addr, "ops", "viewer-password-7", &code_now(&ops));
    assert_eq!(r.status, 303, "{}", r.body);
    let page = http(
        &serve.addr,
        "GET",
        &format!("/console/records/VAN-R/{}", ids[1]),
        &jar,
        &[],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(why), "{}", page.body);
    assert!(page.body.contains("SUP-SIM-1"), "{}", page.body);
    drop(serve);

    // The van hears it back, signed by the centre: rejected, with the reason.
    let out = run(&van, &["receipt", "import", receipt.to_str().unwrap()]);
    assert!(out.status.code().is_some(), "{}", text(&out));
    let (_, list) = json_of(&van, &["list"]);
    assert_eq!(list["records"][0]["status"], "acknowledged", "{list}");
    assert_eq!(list["records"][1]["status"], "rejected", "{list}");
    assert!(
        list["records"][1]["rejected_reason"]
            .as_str()
            .is_some_and(|r| r.contains(why)),
        "{list}"
    );

    // Released from hold, the third record follows the rejected one in the centre's chain.
    let out = crate::common::run_with_input(&van, &["approve", &ids[2], "--pin-stdin"], pin);
    assert!(out.status.success(), "approve: {}", text(&out));
    let bundle = approve_and_export(&van, &tmp.path().join("usb2"));
    let (_, report) = central.json(&["import", &bundle]);
    let (_, clist) = central.json(&["list"]);
    let third = clist["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ids[2].as_str())
        .map(|r| r["status"].clone());
    assert_eq!(third, Some(json!("verified")), "{report} {clist}");
    let (code, v) = central.json(&["verify"]);
    assert_eq!(code, 0, "{v}");
}
