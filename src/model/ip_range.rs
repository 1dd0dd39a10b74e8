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

/// Ranges of IPv4 addresses that are not on the public Internet (RFC 6890's
/// special-purpose registry: this network, private, CGNAT, loopback,
/// link-local, documentation, benchmarking, multicast and reserved).
const NON_PUBLIC_V4: &[(u32, u32)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8
    (0x0A00_0000, 8),  // 10.0.0.0/8
    (0x6440_0000, 10), // 100.64.0.0/10
    (0x7F00_0000, 8),  // 127.0.0.0/8
    (0xA9FE_0000, 16), // 169.254.0.0/16
    (0xAC10_0000, 12), // 172.16.0.0/12
    (0xC000_0000, 24), // 192.0.0.0/24
    (0xC000_0200, 24), // 192.0.2.0/24
    (0xC0A8_0000, 16), // 192.168.0.0/16
    (0xC612_0000, 15), // 198.18.0.0/15
    (0xC633_6400, 24), // 198.51.100.0/24
    (0xCB00_7100, 24), // 203.0.113.0/24
    (0xE000_0000, 3),  // 224.0.0.0/4 multicast and 240.0.0.0/4 reserved
];

/// What a set of ranges covers, as the union of its intervals: the figures
/// the open-relay guard judges, whatever way the ranges are split or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coverage {
    /// IPv4 addresses covered.
    pub v4: u128,
    /// Of those, addresses on the public Internet.
    pub v4_public: u128,
    /// IPv6 addresses covered (saturating at u128::MAX).
    pub v6: u128,
    /// Of those, addresses in global unicast space (2000::/3).
    pub v6_public: u128,
}

/// Sorted, merged `[start, end]` intervals of one family.
fn merged(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn size(intervals: &[(u128, u128)]) -> u128 {
    intervals
        .iter()
        .fold(0u128, |n, (s, e)| n.saturating_add(e - s).saturating_add(1))
}

/// Addresses of `union` (merged) that fall in `within` (merged).
fn intersection(union: &[(u128, u128)], within: &[(u128, u128)]) -> u128 {
    let (mut i, mut j, mut n) = (0, 0, 0u128);
    while i < union.len() && j < within.len() {
        let (s, e) = (union[i].0.max(within[j].0), union[i].1.min(within[j].1));
        if s <= e {
            n = n.saturating_add(e - s).saturating_add(1);
        }
        if union[i].1 < within[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    n
}

fn non_public_v4() -> Vec<(u128, u128)> {
    merged(
        NON_PUBLIC_V4
            .iter()
            .map(|&(a, len)| {
                let a = a as u128;
                (a, a | ((1u128 << (32 - len)) - 1))
            })
            .collect(),
    )
}

impl Coverage {
    /// The union of `ranges`, in O(n log n).
    pub fn of<'a>(ranges: impl IntoIterator<Item = &'a IpRange>) -> Self {
        let (mut v4, mut v6) = (vec![], vec![]);
        for r in ranges {
            let iv = (to_u128(r.start), to_u128(r.end));
            if r.is_v4() { v4.push(iv) } else { v6.push(iv) }
        }
        let (v4, v6) = (merged(v4), merged(v6));
        let non_public = non_public_v4();
        let v4_all = size(&v4);
        let global_unicast = [(0x2000u128 << 112, (0x4000u128 << 112) - 1)];
        Coverage {
            v4: v4_all,
            v4_public: v4_all - intersection(&v4, &non_public),
            v6: size(&v6),
            v6_public: intersection(&v6, &global_unicast),
        }
    }

    /// Enough of the public Internet that anyone can find an address in it:
    /// more public IPv4 addresses than a /8 holds, or more global IPv6
    /// addresses than a /32 (a whole provider's allocation).
    pub fn is_open_to_the_internet(&self) -> bool {
        self.v4_public > 1 << 24 || self.v6_public > 1 << 96
    }

    /// Wider than an organisation's own network usually is: more than a /8
    /// of IPv4 or a /32 of IPv6.
    pub fn is_very_wide(&self) -> bool {
        self.v4 > 1 << 24 || self.v6 > 1 << 96
    }

    /// "0.4% of the public IPv4 Internet, 0% of global IPv6".
    pub fn describe(&self) -> String {
        let pct = |n: u128, of: f64| (n as f64) / of * 100.0;
        let public_v4 = ((1u128 << 32) - size(&non_public_v4())) as f64;
        format!(
            "{:.1}% of the public IPv4 Internet and {:.1}% of global IPv6",
            pct(self.v4_public, public_v4),
            pct(self.v6_public, (1u128 << 125) as f64)
        )
    }
}

/// A point of the combined address space: IPv4 sorts before IPv6, so an
/// interval never spans the two families.
type Point = (bool, u128);

fn point(ip: IpAddr) -> Point {
    (ip.is_ipv6(), to_u128(ip))
}

/// A conflict between range `a[i]` and range `b[j]` on one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Identical(usize, usize),
    PartialOverlap(usize, usize),
}

/// Intervals sorted by start, with a sparse table answering "which
/// interval whose start lies in this slice ends last" in O(1).
struct ByStart {
    /// (start, end, index in the caller's slice), sorted by start.
    items: Vec<(Point, Point, usize)>,
    /// table[k][i]: position in `items` of the latest end among items[i .. i + 2^k].
    table: Vec<Vec<u32>>,
}

impl ByStart {
    fn new(ranges: &[IpRange]) -> Self {
        let mut items: Vec<_> = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| (point(r.start), point(r.end), i))
            .collect();
        items.sort_unstable_by_key(|x| x.0);
        let mut table = vec![(0..items.len() as u32).collect::<Vec<u32>>()];
        let mut k = 1;
        while (1 << k) <= items.len() {
            let prev = &table[k - 1];
            let half = 1 << (k - 1);
            let row = (0..=items.len() - (1 << k))
                .map(|i| {
                    let (x, y) = (prev[i], prev[i + half]);
                    if items[y as usize].1 > items[x as usize].1 {
                        y
                    } else {
                        x
                    }
                })
                .collect();
            table.push(row);
            k += 1;
        }
        ByStart { items, table }
    }

    /// The interval ending last among those starting in `(after, upto]`.
    fn latest_end_starting_in(&self, after: Point, upto: Point) -> Option<&(Point, Point, usize)> {
        let lo = self.items.partition_point(|x| x.0 <= after);
        let hi = self.items.partition_point(|x| x.0 <= upto);
        if lo >= hi {
            return None;
        }
        let k = (usize::BITS - 1 - (hi - lo).leading_zeros()) as usize;
        let (x, y) = (self.table[k][lo], self.table[k][hi - (1 << k)]);
        let best = if self.items[y as usize].1 > self.items[x as usize].1 {
            y
        } else {
            x
        };
        Some(&self.items[best as usize])
    }
}

/// Spec rule 5 between two sets of ranges on one binding: ranges of `a`
/// that are identical to, or partially overlap, a range of `b`, each with a
/// witness. Empty exactly when there is no conflict; every range of `a`
/// with an identical twin or a range of `b` starting inside it and ending
/// after it is listed, and at least one for every range of `b` that a range
/// of `a` straddles. O((n + m) log(n + m)), so two connectors of 100,000
/// ranges each are judged in well under a second (the pairwise check took
/// minutes and held the configuration writer all along).
pub fn conflicts(a: &[IpRange], b: &[IpRange]) -> Vec<Conflict> {
    let mut out = vec![];
    let mut flagged = vec![false; a.len()];
    let same: std::collections::HashMap<(Point, Point), usize> = b
        .iter()
        .enumerate()
        .map(|(j, r)| ((point(r.start), point(r.end)), j))
        .collect();
    for (i, r) in a.iter().enumerate() {
        if let Some(&j) = same.get(&(point(r.start), point(r.end))) {
            out.push(Conflict::Identical(i, j));
            flagged[i] = true;
        }
    }
    // A range of b that starts inside a[i] and ends after it.
    let bs = ByStart::new(b);
    for (i, r) in a.iter().enumerate() {
        let (s, e) = (point(r.start), point(r.end));
        if !flagged[i]
            && let Some(&(_, end, j)) = bs.latest_end_starting_in(s, e)
            && end > e
        {
            out.push(Conflict::PartialOverlap(i, j));
            flagged[i] = true;
        }
    }
    // A range of a that starts inside b[j] and ends after it.
    let as_ = ByStart::new(a);
    for (j, r) in b.iter().enumerate() {
        let (s, e) = (point(r.start), point(r.end));
        if let Some(&(_, end, i)) = as_.latest_end_starting_in(s, e)
            && end > e
            && !flagged[i]
        {
            out.push(Conflict::PartialOverlap(i, j));
            flagged[i] = true;
        }
    }
    out.sort_unstable_by_key(|c| match c {
        Conflict::Identical(i, _) | Conflict::PartialOverlap(i, _) => *i,
    });
    out
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
            let (mut start, mut end) = (parse_ip(a)?, parse_ip(b)?);
            if start.is_ipv4() != end.is_ipv4() {
                return Err(format!("'{s}' mixes IPv4 and IPv6"));
            }
            // A range is the set between its ends, whichever is written
            // first: `10.0.0.20-10.0.0.1` is stored as `10.0.0.1-10.0.0.20`.
            if to_u128(start) > to_u128(end) {
                std::mem::swap(&mut start, &mut end);
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
    "10.0.0.0/24",
    Some(super::schema::ip_range_pattern()),
    Some(95)
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
        // A range written backwards is the same set.
        assert_eq!(r("10.0.0.9-10.0.0.1").to_string(), "10.0.0.1-10.0.0.9");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["10.0.0.300", "10.0.0.0/33", "10.0.0.1-::1", "x"] {
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
    #[test]
    fn coverage_judges_the_union_however_split() {
        let cov = |rs: &[&str]| Coverage::of(rs.iter().map(|s| r(s)).collect::<Vec<_>>().iter());
        assert!(cov(&["0.0.0.0/1", "128.0.0.0/1"]).is_open_to_the_internet());
        assert!(cov(&["0.0.0.0-255.255.255.254"]).is_open_to_the_internet());
        assert!(cov(&["2000::/4", "3000::/4"]).is_open_to_the_internet());
        assert!(cov(&["::/1", "8000::/1"]).is_open_to_the_internet());
        // Private and loopback space is not the Internet, however wide.
        let private = cov(&[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "127.0.0.0/8",
        ]);
        assert!(!private.is_open_to_the_internet());
        assert!(private.is_very_wide());
        assert_eq!(private.v4_public, 0);
        // Duplicates and overlaps count once.
        let dup = cov(&["11.0.0.0/8", "11.0.0.0/9", "11.128.0.0/9"]);
        assert_eq!(dup.v4, 1 << 24);
        assert!(!dup.is_open_to_the_internet() && !dup.is_very_wide());
        // Two public /8s: past the line.
        assert!(cov(&["11.0.0.0/8", "12.0.0.0/8"]).is_open_to_the_internet());
        assert!(!cov(&["203.0.114.0/24", "2001:db8::/48"]).is_very_wide());
    }
    #[test]
    fn conflicts_agree_with_the_pairwise_rule() {
        use proptest::prelude::*;
        let range =
            (0u32..64, 0u32..16).prop_map(|(s, len)| r(&format!("10.0.0.{s}-10.0.0.{}", s + len)));
        proptest!(|(a in proptest::collection::vec(range.clone(), 0..12), b in proptest::collection::vec(range, 0..12))| {
            let fast: Vec<usize> = conflicts(&a, &b).iter().map(|c| match c {
                Conflict::Identical(i, _) | Conflict::PartialOverlap(i, _) => *i,
            }).collect();
            let slow: Vec<usize> = (0..a.len())
                .filter(|&i| b.iter().any(|t| a[i] == *t || a[i].partially_overlaps(t)))
                .collect();
            prop_assert_eq!(fast.is_empty(), slow.is_empty());
            prop_assert!(fast.iter().all(|i| slow.contains(i)), "{:?} vs {:?}", fast, slow);
        });
    }

    #[test]
    fn conflicts_of_two_hundred_thousand_ranges_take_well_under_a_second() {
        let mk = |off: u32| -> Vec<IpRange> {
            (0..100_000u32)
                .map(|i| {
                    IpRange::single(std::net::Ipv4Addr::from(0x0B00_0000 + i * 4 + off).into())
                })
                .collect()
        };
        let (a, b) = (mk(0), mk(1));
        let t = std::time::Instant::now();
        assert!(conflicts(&a, &b).is_empty());
        let b2 = mk(0);
        assert_eq!(conflicts(&a, &b2).len(), 100_000);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }
}
