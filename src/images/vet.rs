//! Which addresses the egress guard never connects to, whatever name led
//! there: the node's and the cloud's own services live on them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Cloud metadata services outside the link-local ranges (AWS IPv6, Alibaba).
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// Why `ip` is refused, or `None` when the guard may connect to it.
///
/// Loopback is allowed (a registry on the node itself, and the tests); private
/// ranges are allowed too (in-cluster registries): the operator narrows them
/// with `imageLookup.registries`.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => refusal_v4(v4),
            None => refusal_v6(v6),
        },
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_link_local() {
        // 169.254.169.254 (AWS, GCP, Azure metadata) is here too.
        Some("a link-local address")
    } else if ip == METADATA_V4 {
        Some("a cloud metadata address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_broadcast() {
        Some("a broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.segments()[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip == METADATA_V6 {
        Some("a cloud metadata address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_allowed_addresses() {
        for (ip, want) in [
            ("169.254.169.254", Some("a link-local address")),
            ("169.254.0.1", Some("a link-local address")),
            ("::ffff:169.254.169.254", Some("a link-local address")),
            ("fe80::1", Some("a link-local address")),
            ("febf::1", Some("a link-local address")),
            ("fd00:ec2::254", Some("a cloud metadata address")),
            ("100.100.100.200", Some("a cloud metadata address")),
            ("0.0.0.0", Some("an unspecified address")),
            ("::", Some("an unspecified address")),
            ("255.255.255.255", Some("a broadcast address")),
            ("224.0.0.1", Some("a multicast address")),
            ("ff02::1", Some("a multicast address")),
            ("127.0.0.1", None),
            ("::1", None),
            ("10.0.0.1", None),
            ("203.0.113.7", None),
            ("fec0::1", None),
            ("2001:db8::1", None),
        ] {
            assert_eq!(refusal(ip.parse().unwrap()), want, "{ip}");
        }
    }
}
