//! The TCP socket under a websocket, for what the session actor cannot do
//! itself. actix-web-actors polls a session only while the connection's
//! writer wants more bytes, so a client that stops reading also stops its
//! session: it can neither notice nor close itself. The hub can, through
//! this handle: it shuts the socket down, the writer fails, and actix ends
//! the session. The handle also caps the kernel's send buffer, so a stalled
//! client holds little memory and is found out quickly.

use std::any::Any;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use actix_web::HttpRequest;
use actix_web::dev::Extensions;

/// The raw descriptor of an accepted connection, recorded by `on_connect`.
#[derive(Debug, Clone, Copy)]
struct ConnectionFd(RawFd);

/// `HttpServer::on_connect` hook: remembers each connection's descriptor.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        data.insert(ConnectionFd(tcp.as_raw_fd()));
    }
}

/// A websocket's own duplicate of its connection's descriptor: it stays valid
/// however the connection ends, and is closed when the session drops it.
#[derive(Debug)]
pub struct SessionSocket(OwnedFd);

impl SessionSocket {
    /// Duplicates the descriptor of the connection `req` arrived on.
    pub fn of(req: &HttpRequest) -> Option<Self> {
        let ConnectionFd(fd) = *req.conn_data::<ConnectionFd>()?;
        // SAFETY: the connection is serving this very request, so its
        // descriptor is open for the duration of this call; the duplicate
        // is ours to own.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        borrowed.try_clone_to_owned().ok().map(SessionSocket)
    }

    /// Caps the kernel send buffer (the kernel doubles the figure for its bookkeeping).
    pub fn limit_send_buffer(&self, bytes: usize) {
        if let Err(error) = socket2::SockRef::from(&self.0).set_send_buffer_size(bytes) {
            tracing::debug!(%error, "could not cap a websocket's send buffer");
        }
    }

    /// Ends the connection in both directions, whatever the session is doing.
    pub fn shut_down(&self) {
        let _ = socket2::SockRef::from(&self.0).shutdown(Shutdown::Both);
    }
}
