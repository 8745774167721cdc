//! Which addresses a webhook delivery may reach (the SSRF guard).
//!
//! The check is made on every address a receiver's name resolves to, and
//! the delivery connects to exactly the address that passed (no second
//! lookup a rebinding DNS server could answer differently); redirects are
//! checked the same way. Refused unless an admin allow-lists them
//! (`webhooks.allow_addresses`): loopback, link-local (where cloud metadata
//! services live), the known metadata addresses outside it, unspecified,
//! multicast and broadcast addresses, the other special-purpose ranges of
//! the IANA registries (documentation, benchmarking, protocol assignments),
//! and every address of the appliance's own host. Private ranges are
//! allowed (on-prem receivers are internal) unless
//! `webhooks.deny_private_addresses` is set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::cidr::canonical;
use crate::config::AddressPolicy;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Loopback,
    LinkLocal,
    Metadata,
    Unspecified,
    Multicast,
    Reserved,
    OwnHost,
    Private,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Loopback => "a loopback address",
            Refusal::LinkLocal => "a link-local address",
            Refusal::Metadata => "a cloud metadata service address",
            Refusal::Unspecified => "an unspecified or reserved address",
            Refusal::Multicast => "a multicast or broadcast address",
            Refusal::Reserved => {
                "a special-purpose address (documentation, benchmarking or protocol use)"
            }
            Refusal::OwnHost => "an address of the appliance's own host",
            Refusal::Private => "a private address (webhooks.deny_private_addresses is on)",
        }
    }
}

/// Metadata services outside 169.254.0.0/16 (where AWS's, GCP's and
/// Azure's IPv4 ones live): Alibaba Cloud's, Azure's WireServer and AWS's
/// IPv6 one.
const METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

// The policy is configuration's value (`config::AddressPolicy`); what it
// allows is decided here.
impl AddressPolicy {
    /// `Ok` when a delivery may connect to `addr`.
    pub fn check(&self, addr: IpAddr) -> Result<(), Refusal> {
        let addr = canonical(addr);
        if self.allow.iter().any(|c| c.contains(addr)) {
            return Ok(());
        }
        match classify(addr) {
            // The more telling reason for loopback and link-local.
            Some(r @ (Refusal::Loopback | Refusal::LinkLocal | Refusal::Metadata)) => Err(r),
            _ if own_addresses().contains(&addr) => Err(Refusal::OwnHost),
            Some(Refusal::Private) if !self.deny_private => Ok(()),
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

/// How long the host's own addresses are trusted before they are read
/// again (interfaces come and go: DHCP, VPNs, containers).
const OWN_ADDRESSES_FOR: Duration = Duration::from_secs(30);

/// Every address of this host's interfaces, re-read every 30 seconds.
fn own_addresses() -> Vec<IpAddr> {
    static CACHE: Mutex<Option<(Instant, Vec<IpAddr>)>> = Mutex::new(None);
    let mut cache = match CACHE.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((at, addresses)) = cache.as_ref() {
        if at.elapsed() < OWN_ADDRESSES_FOR {
            return addresses.clone();
        }
    }
    let addresses: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|interfaces| {
            interfaces
                .filter_map(|i| i.address)
                .filter_map(|a| {
                    a.as_sockaddr_in()
                        .map(|v4| IpAddr::V4(v4.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                })
                .map(canonical)
                .collect()
        })
        .unwrap_or_default();
    *cache = Some((Instant::now(), addresses.clone()));
    addresses
}

/// IPv4 special-purpose blocks (IANA registry) not covered by the std
/// classifications: protocol assignments, the 6to4 relay anycast, the
/// three documentation networks and benchmarking.
const RESERVED_V4: [(Ipv4Addr, u8); 6] = [
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
];

/// IPv6 special-purpose blocks: discard-only, IETF protocol assignments
/// (Teredo, benchmarking, ORCHID), documentation (both), SRv6 SIDs and
/// local-use NAT64.
const RESERVED_V6: [(Ipv6Addr, u8); 6] = [
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
];

fn in_v4(a: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(a) & mask == u32::from(net) & mask
}

fn in_v6(a: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(a) & mask == u128::from(net) & mask
}

fn classify(addr: IpAddr) -> Option<Refusal> {
    if METADATA.contains(&addr) {
        return Some(Refusal::Metadata);
    }
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_loopback() {
                Some(Refusal::Loopback)
            } else if a.is_link_local() {
                if a == Ipv4Addr::new(169, 254, 169, 254) {
                    Some(Refusal::Metadata)
                } else {
                    Some(Refusal::LinkLocal)
                }
            } else if o[0] == 0 || o[0] >= 240 {
                // 0.0.0.0/8 ("this network"), 240.0.0.0/4 reserved and the
                // broadcast address.
                if a.is_broadcast() {
                    Some(Refusal::Multicast)
                } else {
                    Some(Refusal::Unspecified)
                }
            } else if a.is_multicast() {
                Some(Refusal::Multicast)
            } else if RESERVED_V4.iter().any(|block| in_v4(a, *block)) {
                Some(Refusal::Reserved)
            } else if a.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
                // RFC 1918 and carrier-grade NAT (100.64.0.0/10).
                Some(Refusal::Private)
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            if a.is_loopback() {
                Some(Refusal::Loopback)
            } else if a.is_unspecified() {
                Some(Refusal::Unspecified)
            } else if first & 0xffc0 == 0xfe80 {
                Some(Refusal::LinkLocal)
            } else if a.is_multicast() {
                Some(Refusal::Multicast)
            } else if RESERVED_V6.iter().any(|block| in_v6(a, *block)) {
                Some(Refusal::Reserved)
            } else if let Some(v4) = embedded_v4(a) {
                // NAT64 and 6to4 addresses reach the IPv4 address they carry.
                classify(IpAddr::V4(v4))
            } else if first & 0xfe00 == 0xfc00 {
                // Unique local addresses, IPv6's private ranges.
                Some(Refusal::Private)
            } else if let Some(v4) = a.to_ipv4() {
                // IPv4-compatible (deprecated) forms: judged as IPv4.
                if a.segments()[..6] == [0; 6] {
                    classify(IpAddr::V4(v4))
                } else {
                    None
                }
            } else {
                None
            }
        }
    }
}

/// The IPv4 address inside a NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`)
/// address.
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(v4(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(v4(s[1], s[2]))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cidr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn refuses_loopback_link_local_and_metadata_by_default() {
        let p = AddressPolicy::default();
        for (addr, why) in [
            ("127.0.0.1", Refusal::Loopback),
            ("127.8.9.10", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("169.254.169.254", Refusal::Metadata),
            ("::ffff:169.254.169.254", Refusal::Metadata),
            ("169.254.1.1", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("fd00:ec2::254", Refusal::Metadata),
            ("100.100.100.200", Refusal::Metadata),
            ("0.0.0.0", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("255.255.255.255", Refusal::Multicast),
            ("224.0.0.1", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
            ("64:ff9b::a9fe:a9fe", Refusal::Metadata),
            ("64:ff9b::7f00:1", Refusal::Loopback),
            ("2002:7f00:1::", Refusal::Loopback),
            ("2002:a9fe:a9fe::1", Refusal::Metadata),
            ("192.0.2.10", Refusal::Reserved),
            ("198.51.100.1", Refusal::Reserved),
            ("203.0.113.255", Refusal::Reserved),
            ("198.19.255.1", Refusal::Reserved),
            ("192.0.0.8", Refusal::Reserved),
            ("2001:db8::1", Refusal::Reserved),
            ("3fff::1", Refusal::Reserved),
            ("2001:2::1", Refusal::Reserved),
            ("100::1", Refusal::Reserved),
            ("::ffff:192.0.2.1", Refusal::Reserved),
        ] {
            assert_eq!(p.check(ip(addr)), Err(why), "{addr}");
        }
    }

    #[test]
    fn private_ranges_are_allowed_unless_denied() {
        let open = AddressPolicy::default();
        let closed = AddressPolicy {
            deny_private: true,
            ..AddressPolicy::default()
        };
        for addr in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
        ] {
            assert_eq!(open.check(ip(addr)), Ok(()), "{addr}");
            assert_eq!(closed.check(ip(addr)), Err(Refusal::Private), "{addr}");
        }
        for addr in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2a00:1450::1"] {
            assert_eq!(closed.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn allow_list_overrides_refusals_for_its_block_only() {
        let p = AddressPolicy {
            allow: vec![
                Cidr::parse("127.0.0.1/32").expect("cidr"),
                Cidr::parse("::1").expect("cidr"),
            ],
            deny_private: false,
        };
        assert_eq!(p.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("::1")), Ok(()));
        assert_eq!(p.check(ip("127.0.0.2")), Err(Refusal::Loopback));
        assert_eq!(p.check(ip("169.254.169.254")), Err(Refusal::Metadata));
    }

    #[test]
    fn the_hosts_own_addresses_are_refused_unless_allowed() {
        let own: Vec<IpAddr> = own_addresses()
            .into_iter()
            .filter(|a| !a.is_loopback())
            .collect();
        let p = AddressPolicy::default();
        for addr in &own {
            assert!(p.check(*addr).is_err(), "{addr}");
        }
        if let Some(first) = own.first() {
            let allowed = AddressPolicy {
                allow: vec![Cidr::parse(&first.to_string()).expect("cidr")],
                deny_private: false,
            };
            assert_eq!(allowed.check(*first), Ok(()));
        }
        assert_eq!(p.check(ip("8.8.8.8")), Ok(()));
    }
}
