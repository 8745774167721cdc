//! Address blocks in CIDR notation: the values `webhooks.allow_addresses`
//! and `metrics.allow_addresses` produce.

use std::fmt;
use std::net::IpAddr;

/// An address block in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare
/// address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not an address block; expected CIDR notation such as 10.1.0.0/16, 127.0.0.1/32 or ::1/128")]
pub struct CidrError(pub String);

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(text.to_string());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        // An IPv4 block written as IPv6 (`::ffff:10.0.0.0/104`) is the IPv4
        // block it names; its prefix counts the 96 bits before the address.
        match network {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => Ok(Cidr {
                    network: IpAddr::V4(v4),
                    prefix: prefix - 96,
                }),
                Some(_) => Err(err()),
                None => Ok(Cidr { network, prefix }),
            },
            IpAddr::V4(_) => Ok(Cidr { network, prefix }),
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32u32.saturating_sub(u32::from(self.prefix)))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128u32.saturating_sub(u32::from(self.prefix)))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is checked as the
/// IPv4 address it is.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn cidr_parsing() {
        assert!(Cidr::parse("10.0.0.0/8")
            .expect("cidr")
            .contains(ip("10.255.0.1")));
        assert!(!Cidr::parse("10.0.0.0/8")
            .expect("cidr")
            .contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .expect("cidr")
            .contains(ip("1.2.3.4")));
        assert!(Cidr::parse("fd00::/8")
            .expect("cidr")
            .contains(ip("fd12::1")));
        // IPv4 written as IPv6: the IPv4 block it names, never more.
        let one = Cidr::parse("::ffff:10.1.2.3/128").expect("cidr");
        assert!(one.contains(ip("10.1.2.3")));
        assert!(!one.contains(ip("10.1.2.4")));
        assert!(!one.contains(ip("169.254.169.254")));
        let block = Cidr::parse("::ffff:10.0.0.0/104").expect("cidr");
        assert!(block.contains(ip("10.9.9.9")) && !block.contains(ip("11.0.0.1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0.0/x",
            "1.2.3/8",
            "::ffff:10.0.0.0/95",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
