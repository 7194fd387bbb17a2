//! Loopback addresses for clusters that tools and tests start on one machine.
//!
//! A node's ports are written into the cluster's configuration before the node binds them, so
//! they cannot be "port 0". Choosing one by binding port 0 and releasing it races with every
//! outgoing connection on the machine: the kernel hands those ports from the same ephemeral
//! range, and a client connecting between the release and the node's bind takes the port. The
//! ports here come from below the ephemeral range, where the kernel never hands out ports by
//! itself, starting at a point that depends on the process id (parallel test processes start far
//! apart) and checked free when chosen. What is left of the race (another process choosing the
//! same port in the same instant) shows as a node that exits with "address in use", which callers
//! treat as a reason to retry with fresh ports ([`is_addr_in_use`]).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const LOW: u32 = 10_000;
/// Used when the kernel's ephemeral range cannot be read or leaves too little room below it.
const FALLBACK_HIGH: u32 = 32_768;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The start of the kernel's ephemeral port range (Linux), if it can be read.
fn ephemeral_low() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A loopback address whose port is free now and outside the kernel's ephemeral range.
pub fn unused_loopback_addr() -> std::io::Result<SocketAddr> {
    let high = ephemeral_low()
        .filter(|&low| low >= LOW + 1_000)
        .unwrap_or(FALLBACK_HIGH);
    let span = high - LOW;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (start + n) % span;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port as u16));
        if TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    // Everything below the ephemeral range is taken: fall back to one the kernel picks.
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// Whether a node's log says it could not bind its address because another socket holds it.
pub fn is_addr_in_use(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("AddrInUse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_loopback_and_below_the_ephemeral_range() {
        let addrs: Vec<SocketAddr> = (0..20).map(|_| unused_loopback_addr().unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = addrs.iter().collect();
        assert_eq!(distinct.len(), addrs.len());
        for a in &addrs {
            assert!(a.ip().is_loopback());
            if let Some(low) = ephemeral_low().filter(|&l| l >= LOW + 1_000) {
                assert!(u32::from(a.port()) < low, "{a} is in the ephemeral range");
            }
        }
    }
}
