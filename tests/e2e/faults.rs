//! Sync through a TCP proxy that cuts connections at random byte offsets and delays data: the sync
//! finishes on retry, every record reaches the centre exactly once, and at most the chunk in flight
//! at each cut is sent again.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::centre::TestCentre;
use crate::common::*;

struct CutProxy {
    addr: SocketAddr,
    upstream_bytes: Arc<AtomicU64>,
    cuts_made: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

impl CutProxy {
    /// Forward to `target`; connection *i* is cut after `budgets[i]` bytes (both directions
    /// counted); once the budgets run out, connections are left alone.
    fn start(target: SocketAddr, budgets: Vec<u64>) -> CutProxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let budgets = Arc::new(Mutex::new(VecDeque::from(budgets)));
        let upstream_bytes = Arc::new(AtomicU64::new(0));
        let cuts_made = Arc::new(AtomicU64::new(0));
        let (up, cuts) = (upstream_bytes.clone(), cuts_made.clone());
        rt.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let budget = budgets.lock().unwrap().pop_front();
                let (up, cuts) = (up.clone(), cuts.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let left = Arc::new(AtomicU64::new(budget.unwrap_or(u64::MAX)));
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let l1 = left.clone();
                    let to_server = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            let allowed = l1
                                .fetch_sub(
                                    (n as u64).min(l1.load(Ordering::SeqCst)),
                                    Ordering::SeqCst,
                                )
                                .min(n as u64) as usize;
                            if sw.write_all(&buf[..allowed]).await.is_err() {
                                return;
                            }
                            up.fetch_add(allowed as u64, Ordering::SeqCst);
                            if allowed < n {
                                return;
                            }
                            if n % 3 == 0 {
                                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                            }
                        }
                    };
                    let to_client = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            let allowed = left
                                .fetch_sub(
                                    (n as u64).min(left.load(Ordering::SeqCst)),
                                    Ordering::SeqCst,
                                )
                                .min(n as u64) as usize;
                            if cw.write_all(&buf[..allowed]).await.is_err() || allowed < n {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = to_server => {}
                        _ = to_client => {}
                    }
                    if budget.is_some() {
                        cuts.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        CutProxy {
            addr,
            upstream_bytes,
            cuts_made,
            _rt: rt,
        }
    }
}

#[test]
fn sync_survives_a_hundred_and_twenty_cuts_without_duplicates_or_waste() {
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    centre.register(&s.station);
    // Lossless prints (≈ 900 KB a record, 18 MB in all) so the 120 budgets below are all spent
    // before the sync can finish; WSQ records (≈ 130 KB) would complete after ~30 cuts.
    std::fs::write(
        s.station.join("config.toml"),
        "[capture]\nfinger_format = \"png\"\n",
    )
    .unwrap();
    s.enrol(20, 21);
    let payload_total: u64 = {
        let store = tasjil::store::Store::open(&s.station.join("station.db")).unwrap();
        store
            .envelopes()
            .unwrap()
            .iter()
            .map(|r| store.payload(&r.payload).unwrap().unwrap().len() as u64)
            .sum()
    };

    let mut seed = 0x5EED_u64 ^ payload_total;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let budgets: Vec<u64> = (0..120)
        .map(|i| {
            if i % 4 == 0 {
                1 + next() % 2_000
            } else {
                1 + next() % 300_000
            }
        })
        .collect();
    let target: SocketAddr = centre.url.trim_start_matches("http://").parse().unwrap();
    let proxy = CutProxy::start(target, budgets);
    let url = format!("http://{}", proxy.addr);

    let (code, v) = s.json(&[
        "sync",
        "--central",
        &url,
        "--retries",
        "1000",
        "--retry-delay-ms",
        "5",
    ]);
    assert_eq!(code, 0, "{v}");
    let cuts = proxy.cuts_made.load(Ordering::SeqCst);
    assert!(cuts >= 100, "only {cuts} connections were cut");
    assert_eq!(v["acknowledged"], 20, "{v}");

    let records = centre.store.list().unwrap();
    let ids: BTreeSet<_> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!((records.len(), ids.len()), (20, 20));
    assert!(centre.store.verify_all().unwrap().ok);

    // Resent bytes: everything that went upstream beyond the payloads themselves. Each cut can
    // waste at most the chunk in flight (256 KiB) plus request overhead.
    let upstream = proxy.upstream_bytes.load(Ordering::SeqCst);
    let extra = upstream.saturating_sub(payload_total);
    eprintln!(
        "faults: {cuts} cuts, payload {payload_total} B, upstream {upstream} B, overhead/resent {extra} B ({:.1} %)",
        extra as f64 * 100.0 / payload_total as f64
    );
    assert!(
        extra <= cuts * (256 * 1024 + 4096) + 200_000,
        "too much sent again: {extra} B over {cuts} cuts"
    );

    // Nothing that was complete is sent again.
    let (code, again) = s.json(&["sync", "--central", &url]);
    assert_eq!(
        (code, again["payload_bytes_sent"].as_u64()),
        (0, Some(0)),
        "{again}"
    );
}
