//! systemd readiness notification (sd_notify(3)) without a library: one datagram to the socket
//! named by `NOTIFY_SOCKET`, which systemd sets for a `Type=notify` unit (the packaged
//! `tasjil-central.service`). Outside systemd there is no such variable and nothing happens.

use std::os::unix::net::UnixDatagram;

/// Tell systemd the server is listening (`READY=1`).
pub fn ready() {
    send("READY=1");
}

/// Tell systemd a graceful stop has begun (`STOPPING=1`).
pub fn stopping() {
    send("STOPPING=1");
}

fn send(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        if let Err(e) = send_to(&path, state) {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }
}

fn send_to(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    UnixDatagram::unbound().and_then(|socket| {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
        match bytes.strip_prefix(b"@") {
            // An abstract socket name (systemd's own is a path, a container manager's may not).
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)
            }
            None => socket.send_to(state.as_bytes(), path),
        }
        .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ready_reaches_the_socket_systemd_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::send_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
