//! The nf_tables netlink socket: one `sendmsg` per batch (all pages in one datagram, so the
//! kernel sees BEGIN..END together — crates.md pitfall 1), error collection, and dumps.
//!
//! One of the two modules allowed `unsafe` (raw `socket`/`sendmsg`/`recv` through `libc`).
//! The socket belongs to the network namespace of the thread that opened it.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::NftError;

const NETLINK_NETFILTER: libc::c_int = 12;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// Socket buffers large enough for 100k-element batches and their replies (needs
/// CAP_NET_ADMIN for the `*FORCE` variants; the plain ones are tried as a fallback).
const SOCKET_BUFFER: libc::c_int = 256 << 20;

/// A kernel error for one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelError {
    /// Sequence number of the failing message.
    pub(crate) seq: u32,
    /// Positive errno.
    pub(crate) errno: i32,
}

/// An nf_tables netlink socket.
#[derive(Debug)]
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn last_error(what: &str) -> NftError {
    NftError::Socket {
        what: what.to_string(),
        source: io::Error::last_os_error(),
    }
}

fn set_buffer(fd: libc::c_int, force: libc::c_int, plain: libc::c_int) {
    let size = SOCKET_BUFFER;
    let len = size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = (&raw const size).cast::<libc::c_void>();
    // SAFETY: `ptr` points to a live c_int of `len` bytes for the duration of the call.
    let rc = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, force, ptr, len) };
    if rc < 0 {
        // SAFETY: as above.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, plain, ptr, len) };
    }
}

/// Netlink message headers in a received datagram: (type, flags, seq, whole message).
fn messages(mut data: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            break;
        }
        let ty = u16::from_ne_bytes([data[4], data[5]]);
        let seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
        out.push((ty, seq, &data[..len]));
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    out
}

/// The (negative) error code of an NLMSG_ERROR message.
fn error_code(msg: &[u8]) -> i32 {
    match msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4) {
        Some(b) => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        None => -libc::EPROTO,
    }
}

impl Netlink {
    /// Opens a socket in the current thread's network namespace.
    pub(crate) fn open() -> Result<Netlink, NftError> {
        // SAFETY: plain socket(2) call; the returned descriptor is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(last_error("socket"));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_nl is a valid "any port id" address.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `sa` is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(last_error("bind"));
        }
        set_buffer(fd.as_raw_fd(), libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
        set_buffer(fd.as_raw_fd(), libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
        Ok(Netlink {
            fd,
            seq: 0x1000_0000,
            buf: vec![0u8; 1 << 18],
        })
    }

    fn recv(&mut self, flags: libc::c_int) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is a live, writable buffer of the given length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    flags,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Sends a finalized batch in one datagram and returns the kernel's errors (empty: the
    /// whole transaction was committed). nf_tables processes the batch inside `sendmsg`, so
    /// every reply is queued when it returns and is drained without blocking.
    pub(crate) fn send_batch(
        &mut self,
        batch: &nftnl::FinalizedBatch,
    ) -> Result<Vec<KernelError>, NftError> {
        // Drop stale replies (from an interrupted earlier exchange) first.
        while self.recv(libc::MSG_DONTWAIT).is_ok_and(|n| n > 0) {}
        let mut iov: Vec<libc::iovec> = batch
            .iter()
            .map(|page| libc::iovec {
                iov_base: page.as_ptr() as *mut libc::c_void,
                iov_len: page.len(),
            })
            .collect();
        let total: usize = iov.iter().map(|v| v.iov_len).sum();
        // SAFETY: zeroed sockaddr_nl / msghdr are valid initial values.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut sa).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_nl>() as u32;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        // SAFETY: `msg` points at `sa` and at `iov`, whose entries point into `batch`'s
        // pages; all of them outlive the call.
        let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, 0) };
        if n < 0 {
            return Err(last_error("sendmsg"));
        }
        if n as usize != total {
            return Err(NftError::Socket {
                what: format!("sendmsg sent {n} of {total} bytes"),
                source: io::Error::from(io::ErrorKind::WriteZero),
            });
        }
        let mut errors = Vec::new();
        loop {
            match self.recv(libc::MSG_DONTWAIT) {
                Ok(0) => break,
                Ok(n) => {
                    for (ty, seq, m) in messages(&self.buf[..n]) {
                        if ty == NLMSG_ERROR {
                            let code = error_code(m);
                            if code != 0 {
                                errors.push(KernelError { seq, errno: -code });
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    return Err(NftError::Socket {
                        what: "recv".into(),
                        source: e,
                    });
                }
            }
        }
        Ok(errors)
    }

    /// A fresh sequence number for a request.
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends a dump request (built with sequence number `seq`) and returns every reply
    /// message. `Ok(None)` when the kernel answers ENOENT (no such table or set).
    pub(crate) fn dump(&mut self, req: &[u8], seq: u32) -> Result<Option<Vec<Vec<u8>>>, NftError> {
        while self.recv(libc::MSG_DONTWAIT).is_ok_and(|n| n > 0) {}
        // SAFETY: `req` is a live buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if n < 0 {
            return Err(last_error("send"));
        }
        let mut out = Vec::new();
        loop {
            let n = self.recv(0).map_err(|source| NftError::Socket {
                what: "recv".into(),
                source,
            })?;
            for (ty, mseq, m) in messages(&self.buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(Some(out)),
                    NLMSG_ERROR => {
                        let code = error_code(m);
                        return match -code {
                            0 => Ok(Some(out)),
                            libc::ENOENT => Ok(None),
                            errno => Err(NftError::Kernel {
                                what: "dump".into(),
                                errno,
                            }),
                        };
                    }
                    _ => out.push(m.to_vec()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, ty: u16, seq: u32) -> Vec<u8> {
        let mut v = len.to_ne_bytes().to_vec();
        v.extend(ty.to_ne_bytes());
        v.extend(0u16.to_ne_bytes());
        v.extend(seq.to_ne_bytes());
        v.extend(0u32.to_ne_bytes());
        v
    }

    #[test]
    fn splits_datagrams_and_reads_errors() {
        let mut d = header(20, NLMSG_ERROR, 7);
        d.extend((-libc::EEXIST).to_ne_bytes());
        d.extend(header(17, NLMSG_DONE, 8));
        d.extend([0, 0, 0, 0]);
        let m = messages(&d);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].0, m[0].1), (NLMSG_ERROR, 7));
        assert_eq!(error_code(m[0].2), -libc::EEXIST);
        assert_eq!((m[1].0, m[1].1, m[1].2.len()), (NLMSG_DONE, 8, 17));
        assert!(messages(&header(99, 0, 0)).is_empty());
    }
}
