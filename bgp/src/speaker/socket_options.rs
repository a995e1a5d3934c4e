//! Socket options no safe crate offers: TCP-MD5 signatures (RFC 2385, Linux `TCP_MD5SIG`) and
//! GTSM (RFC 5082: `IP_TTL`/`IPV6_UNICAST_HOPS` 255 out, `IP_MINTTL`/`IPV6_MINHOPCOUNT` in).
//!
//! This is the only module of the crate with `unsafe`: one `setsockopt(2)` call in
//! [`setsockopt`]. Its safety argument: the file descriptor is borrowed (so open for the
//! duration of the call), and the pointer and length describe a live, initialised byte slice
//! the kernel only reads. Every option value is built here as plain bytes in the layout the
//! kernel documents (`struct tcp_md5sig` in `include/uapi/linux/tcp.h`, or a C `int`).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Longest TCP-MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub(crate) const MD5_MAX_KEY_LEN: usize = 80;

/// `sizeof(struct __kernel_sockaddr_storage)`.
const SOCKADDR_STORAGE_LEN: usize = 128;
/// `sizeof(struct tcp_md5sig)`: address, flags, prefixlen, keylen (u16), ifindex (u32), key.
const TCP_MD5SIG_LEN: usize = SOCKADDR_STORAGE_LEN + 1 + 1 + 2 + 4 + MD5_MAX_KEY_LEN;

/// Sets (or with an empty key, removes) the TCP-MD5 key used with `peer` on `fd`. On a
/// listening socket the key applies to connections accepted from `peer`.
pub(crate) fn set_md5_key(fd: BorrowedFd<'_>, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP-MD5 key longer than {MD5_MAX_KEY_LEN} bytes"),
        ));
    }
    let mut value = [0u8; TCP_MD5SIG_LEN];
    write_sockaddr(&mut value[..SOCKADDR_STORAGE_LEN], peer);
    // tcpm_flags = 0 and tcpm_prefixlen = 0: an exact address match.
    let key_len = u16::try_from(key.len()).unwrap_or(0);
    value[SOCKADDR_STORAGE_LEN + 2..SOCKADDR_STORAGE_LEN + 4]
        .copy_from_slice(&key_len.to_ne_bytes());
    let key_at = SOCKADDR_STORAGE_LEN + 8;
    value[key_at..key_at + key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &value)
}

/// GTSM: send with TTL (hop limit) 255 and drop segments that arrive with less than
/// `256 - hops`, i.e. from further than `hops` hops away.
pub(crate) fn set_ttl_security(fd: BorrowedFd<'_>, ipv6: bool, hops: u8) -> io::Result<()> {
    let min = 256 - i32::from(hops.max(1));
    if ipv6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &int(255))?;
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &int(min))
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &int(255))?;
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &int(min))
    }
}

fn int(value: i32) -> [u8; 4] {
    value.to_ne_bytes()
}

/// Writes `struct sockaddr_in` / `sockaddr_in6` (port 0) at the start of `out`.
fn write_sockaddr(out: &mut [u8], addr: IpAddr) {
    match addr {
        IpAddr::V4(v4) => {
            let family = u16::try_from(libc::AF_INET).unwrap_or(2);
            out[0..2].copy_from_slice(&family.to_ne_bytes());
            // sin_port (2 bytes, zero), then sin_addr in network order.
            out[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            let family = u16::try_from(libc::AF_INET6).unwrap_or(10);
            out[0..2].copy_from_slice(&family.to_ne_bytes());
            // sin6_port (2), sin6_flowinfo (4), then sin6_addr.
            out[8..24].copy_from_slice(&v6.octets());
        }
    }
}

#[allow(unsafe_code)]
fn setsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option value too long"))?;
    // SAFETY: `fd` is a borrowed, open descriptor; `value` is a live initialised slice of
    // `len` bytes that setsockopt(2) only reads and does not retain.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn md5_key_is_accepted_by_the_kernel_and_length_checked() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer: IpAddr = "127.0.0.2".parse().unwrap();
        set_md5_key(socket.as_fd(), peer, b"secret").unwrap();
        set_md5_key(socket.as_fd(), peer, b"").unwrap(); // removes it again
        let long = [b'x'; MD5_MAX_KEY_LEN + 1];
        assert!(set_md5_key(socket.as_fd(), peer, &long).is_err());
    }

    #[test]
    fn ttl_security_sets_minimum_ttl() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_ttl_security(socket.as_fd(), false, 1).unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0");
        if let Ok(v6) = v6 {
            set_ttl_security(v6.as_fd(), true, 2).unwrap();
        }
    }

    #[test]
    fn sockaddr_layout() {
        let mut buf = [0u8; SOCKADDR_STORAGE_LEN];
        write_sockaddr(&mut buf, "10.1.2.3".parse().unwrap());
        assert_eq!(&buf[4..8], &[10, 1, 2, 3]);
        assert_eq!(u16::from_ne_bytes([buf[0], buf[1]]), 2);
    }
}
