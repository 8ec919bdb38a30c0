//! A real SMTP server on 127.0.0.1 for tests: speaks the protocol over TCP (EHLO,
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) and keeps what it receives.
//! It can be told to refuse mail with a 4xx, as a full or broken server would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Default)]
pub struct Inbox {
    pub messages: Arc<Mutex<Vec<Vec<u8>>>>,
    pub refuse: Arc<AtomicBool>,
}

impl Inbox {
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Starts the server on `port` (0 = any); returns the port and its inbox.
pub async fn start(port: u16) -> (u16, Inbox, tokio::task::JoinHandle<()>) {
    serve(TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|e| panic!("smtp bind: {e}")))
}

/// Starts the server on a socket bound earlier (see `queue.rs`: a port reserved while
/// nobody listens on it).
pub fn serve(listener: TcpListener) -> (u16, Inbox, tokio::task::JoinHandle<()>) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let inbox = Inbox::default();
    let shared = inbox.clone();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let inbox = shared.clone();
            tokio::spawn(async move {
                let _ = session(socket, inbox).await;
            });
        }
    });
    (port, inbox, task)
}

async fn session(socket: tokio::net::TcpStream, inbox: Inbox) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 test.smtp.local ESMTP ready\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("EHLO") {
            b"250-test.smtp.local\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if cmd.starts_with("HELO") {
            b"250 test.smtp.local\r\n"
        } else if cmd.starts_with("MAIL FROM") {
            if inbox.refuse.load(Ordering::SeqCst) {
                b"421 4.3.2 service not available, try later\r\n"
            } else {
                b"250 2.1.0 ok\r\n"
            }
        } else if cmd.starts_with("RCPT TO") {
            b"250 2.1.5 ok\r\n"
        } else if cmd == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if lines.read_until(b'\n', &mut l).await? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" || l == b".\n" {
                    break;
                }
                // Dot-unstuffing (RFC 5321 4.5.2).
                let body = if l.starts_with(b"..") { &l[1..] } else { &l[..] };
                data.extend_from_slice(body);
            }
            if let Ok(mut m) = inbox.messages.lock() {
                m.push(data);
            }
            b"250 2.0.0 queued\r\n"
        } else if cmd == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else if cmd == "RSET" || cmd == "NOOP" {
            b"250 2.0.0 ok\r\n"
        } else {
            b"502 5.5.2 command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}
