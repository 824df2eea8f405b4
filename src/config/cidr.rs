//! Address ranges for settings that name networks (`trusted_proxies`): `addr/len`, or a
//! bare address for one host.

use std::net::IpAddr;
use std::str::FromStr;

/// An address range `addr/len` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

impl Cidr {
    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let full = usize::from(len / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = len % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        (a[full] & mask) == (b[full] & mask)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net = IpAddr::from_str(addr).map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr {
            net: canonical(net),
            len,
        })
    }
}

/// Parses `trusted_proxies`: CIDRs separated by commas or spaces.
pub fn parse_list(list: &str) -> Result<Vec<Cidr>, String> {
    list.split([',', ' '])
        .filter(|s| !s.trim().is_empty())
        .map(Cidr::from_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_match() {
        let list = parse_list("127.0.0.1, 10.0.0.0/8 2001:db8::/32").unwrap();
        assert_eq!(list.len(), 3);
        assert!(list[0].contains("127.0.0.1".parse().unwrap()));
        assert!(!list[0].contains("127.0.0.2".parse().unwrap()));
        assert!(list[1].contains("10.200.3.4".parse().unwrap()));
        assert!(list[1].contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(list[2].contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!list[2].contains("2001:db9::1".parse().unwrap()));
        assert!(parse_list("10.0.0.0/33").is_err());
        assert!(parse_list("proxy.example").is_err());
        assert!(parse_list("").unwrap().is_empty());
        let odd: Cidr = "192.168.1.0/23".parse().unwrap();
        assert!(odd.contains("192.168.0.7".parse().unwrap()));
        assert!(!odd.contains("192.168.2.7".parse().unwrap()));
    }
}
