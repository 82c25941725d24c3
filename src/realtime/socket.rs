//! Socket options for websockets, set on the connection's descriptor at the
//! upgrade. actix-web-actors polls a session only while the connection's
//! writer wants more bytes, so a client that stops reading also stops its
//! session: it can neither notice nor close itself. The kernel can: with
//! `TCP_USER_TIMEOUT`, data left unread (a zero window) or unacknowledged for
//! that long aborts the connection, the writer fails, and actix ends the
//! session. A small send buffer bounds what a stalled client holds meanwhile.

use std::any::Any;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

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

/// Caps the send buffer and sets the stall timeout of the connection `req`
/// arrived on (the kernel doubles the buffer figure for its bookkeeping).
pub fn configure(req: &HttpRequest, send_buffer: usize, stall_timeout: Duration) {
    let Some(ConnectionFd(fd)) = req.conn_data::<ConnectionFd>().copied() else {
        return;
    };
    // SAFETY: the connection is serving this very request, so its descriptor
    // is open for the duration of this call, and nothing of it is kept.
    let socket = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&socket);
    if let Err(error) = socket.set_send_buffer_size(send_buffer) {
        tracing::debug!(%error, "could not cap a websocket's send buffer");
    }
    if let Err(error) = socket.set_tcp_user_timeout(Some(stall_timeout)) {
        tracing::debug!(%error, "could not set a websocket's stall timeout");
    }
}
