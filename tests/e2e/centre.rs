//! A real centre HTTP server on 127.0.0.1, in process, for the station binary to talk to.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tasjil_central::{server, CentreStore};

pub struct TestCentre {
    pub url: String,
    pub store: Arc<CentreStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestCentre {
    /// Serve on a fresh port.
    pub fn start(dir: &Path) -> TestCentre {
        Self::start_on(dir, "127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(dir: &Path, addr: SocketAddr) -> TestCentre {
        Self::start_with(dir, addr, None)
    }

    /// Serve TLS with the given certificate (DER) and key (PKCS#8 DER).
    pub fn start_tls(dir: &Path, cert: Vec<u8>, key: Vec<u8>) -> TestCentre {
        let config = tasjil_central::tls::server_config(cert, key).unwrap();
        Self::start_with(dir, "127.0.0.1:0".parse().unwrap(), Some(config))
    }

    fn start_with(dir: &Path, addr: SocketAddr, tls: Option<rustls::ServerConfig>) -> TestCentre {
        let store = Arc::new(CentreStore::open(dir).unwrap());
        // Sign verdicts as the real centre does, when this centre has its key.
        if let Ok(keys) = tasjil_sync::CentreKeys::load(&dir.join("centre.key")) {
            store.sign_verdicts_with(keys.signing);
        }
        let listener = std::net::TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = store.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let shutdown = async move {
                    let _ = stopped.await;
                };
                match tls {
                    Some(config) => server::serve_tls(
                        listener,
                        config,
                        server::app(served, None),
                        Default::default(),
                        shutdown,
                    )
                    .await
                    .unwrap(),
                    None => server::serve(
                        listener,
                        server::app(served, None),
                        Default::default(),
                        shutdown,
                    )
                    .await
                    .unwrap(),
                }
            });
        });
        TestCentre {
            url,
            store,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn register(&self, station_dir: &Path) {
        let public = tasjil_sync::StationPublic::load(&station_dir.join("station.pub")).unwrap();
        self.store.add_station(&public, 0).unwrap();
    }
}

impl Drop for TestCentre {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
