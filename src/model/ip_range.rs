//! Remote IP ranges of receive connectors: a single address, an `a-b` range
//! or a CIDR block, IPv4 or IPv6 (an IPv6 zone suffix is accepted and ignored
//! for matching). Selection and validation only ever need containment and
//! size, so a range is kept as its first and last address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
    /// The form the admin wrote, normalised (host bits of a CIDR cleared).
    text: String,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let no_zone = s.split('%').next().unwrap_or(s);
    no_zone
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not an IP address"))
}

impl IpRange {
    /// Every IPv4 address: what Exchange gives an Internet connector.
    pub fn all_v4() -> Self {
        "0.0.0.0-255.255.255.255".parse().expect("valid")
    }

    /// Every IPv6 address.
    pub fn all_v6() -> Self {
        "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            .parse()
            .expect("valid")
    }

    pub fn single(ip: IpAddr) -> Self {
        IpRange {
            start: ip,
            end: ip,
            text: ip.to_string(),
        }
    }

    pub fn is_v4(&self) -> bool {
        self.start.is_ipv4()
    }

    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        ip.is_ipv4() == self.is_v4()
            && to_u128(self.start) <= to_u128(ip)
            && to_u128(ip) <= to_u128(self.end)
    }

    pub fn contains(&self, other: &IpRange) -> bool {
        other.is_v4() == self.is_v4()
            && to_u128(self.start) <= to_u128(other.start)
            && to_u128(other.end) <= to_u128(self.end)
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        other.is_v4() == self.is_v4()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }

    /// Overlapping with neither containing the other: what spec rule 5 forbids
    /// on one binding, because selection between the two would be arbitrary.
    pub fn partially_overlaps(&self, other: &IpRange) -> bool {
        self.overlaps(other) && !self.contains(other) && !other.contains(self)
    }

    /// Number of addresses minus one; smaller is more specific (spec rule 2).
    pub fn span(&self) -> u128 {
        to_u128(self.end) - to_u128(self.start)
    }

    /// Covers the whole address space of its family.
    pub fn is_everything(&self) -> bool {
        self.contains(&Self::all_v4()) || self.contains(&Self::all_v6())
    }
}

/// Two ranges are the same when they cover the same addresses, however written.
impl PartialEq for IpRange {
    fn eq(&self, other: &IpRange) -> bool {
        self.start == other.start && self.end == other.end
    }
}
impl Eq for IpRange {}
impl std::hash::Hash for IpRange {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.start.hash(h);
        self.end.hash(h);
    }
}

impl FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((addr, prefix)) = s.split_once('/') {
            let ip = parse_ip(addr)?;
            let bits: u32 = if ip.is_ipv4() { 32 } else { 128 };
            let len: u32 = prefix
                .parse()
                .ok()
                .filter(|l| *l <= bits)
                .ok_or_else(|| format!("'{s}' has an invalid prefix length (0 to {bits})"))?;
            let host_bits = bits - len;
            let mask: u128 = if host_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let start = to_u128(ip) & !mask;
            let end = start | mask;
            let (start, end) = match ip {
                IpAddr::V4(_) => (
                    IpAddr::V4((start as u32).into()),
                    IpAddr::V4((end as u32).into()),
                ),
                IpAddr::V6(_) => (IpAddr::V6(start.into()), IpAddr::V6(end.into())),
            };
            return Ok(IpRange {
                start,
                end,
                text: format!("{start}/{len}"),
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            let (start, end) = (parse_ip(a)?, parse_ip(b)?);
            if start.is_ipv4() != end.is_ipv4() {
                return Err(format!("'{s}' mixes IPv4 and IPv6"));
            }
            if to_u128(start) > to_u128(end) {
                return Err(format!("'{s}' starts after it ends"));
            }
            return Ok(IpRange {
                start,
                end,
                text: format!("{start}-{end}"),
            });
        }
        Ok(IpRange::single(parse_ip(s)?))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

string_type!(
    IpRange,
    "A remote IP range: a single address (`10.0.0.11`), a range (`10.0.0.1-10.0.0.20`) or CIDR (`10.0.0.0/24`); IPv4 or IPv6.",
    "10.0.0.0/24"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> IpRange {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(r("10.0.0.5/24").to_string(), "10.0.0.0/24");
        assert_eq!(r("10.0.0.1-10.0.0.9").span(), 8);
        assert_eq!(r("10.0.0.1").span(), 0);
        assert_eq!(r("fe80::1%eth0").to_string(), "fe80::1");
        assert_eq!(r("2001:db8::/32").span(), (1u128 << 96) - 1);
        assert_eq!(r("0.0.0.0/0"), IpRange::all_v4());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "10.0.0.300",
            "10.0.0.9-10.0.0.1",
            "10.0.0.0/33",
            "10.0.0.1-::1",
            "x",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn partial_overlap_versus_containment() {
        // spec §3 step 1: 10.0.0.11-13 vs 10.0.0.12-14 overlap partially.
        assert!(r("10.0.0.11-10.0.0.13").partially_overlaps(&r("10.0.0.12-10.0.0.14")));
        // A /28 fully contains a /32: allowed.
        assert!(!r("10.0.0.0/28").partially_overlaps(&r("10.0.0.11")));
        assert!(r("10.0.0.0/28").contains(&r("10.0.0.11")));
        assert!(!r("10.0.0.0/28").overlaps(&r("::1")));
    }

    #[test]
    fn contains_ipv4_mapped_clients() {
        assert!(r("127.0.0.0/8").contains_ip("::ffff:127.0.0.3".parse().unwrap()));
        assert!(IpRange::all_v6().contains_ip("::1".parse().unwrap()));
        assert!(!IpRange::all_v4().contains_ip("::1".parse().unwrap()));
    }
}
