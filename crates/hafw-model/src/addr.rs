//! IPv4 address and prefix newtypes. Parsing them is the IPv4-only rule
//! (alicloud-havip.md rule 8): an IPv6 value never reaches validation.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// An IPv4 address written in the deployment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ip(pub Ipv4Addr);

/// An IPv4 network in CIDR form with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub Ipv4Net);

impl FromStr for Ip {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains(':') {
            return Err(format!(
                "`{s}` is an IPv6 address; VPC, HAVIP and EIP addresses are IPv4 only, write one like 10.0.1.100"
            ));
        }
        s.parse::<Ipv4Addr>()
            .map(Ip)
            .map_err(|_| format!("`{s}` is not an IPv4 address; write one like 10.0.1.100"))
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains(':') {
            return Err(format!(
                "`{s}` is an IPv6 prefix; VPC networks are IPv4 only, write one like 10.0.1.0/24"
            ));
        }
        let net: Ipv4Net = s
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 CIDR; write one like 10.0.1.0/24"))?;
        if net.addr() != net.network() {
            return Err(format!(
                "`{s}` has host bits set; write the network address {}",
                net.trunc()
            ));
        }
        Ok(Cidr(net))
    }
}

impl Cidr {
    pub fn contains(&self, ip: Ip) -> bool {
        self.0.contains(&ip.0)
    }
    pub fn contains_net(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0)
    }
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0) || other.0.contains(&self.0)
    }
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }
    /// The vSwitch gateway Alibaba Cloud uses: the third address from the top
    /// of the block (x.x.x.253 in a /24).
    pub fn alicloud_gateway(&self) -> Ip {
        let top = u32::from(self.0.broadcast());
        Ip(Ipv4Addr::from(top.saturating_sub(2)))
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

struct StrVisitor<T>(std::marker::PhantomData<T>, &'static str);

impl<T: FromStr<Err = String>> Visitor<'_> for StrVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Ip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(Default::default(), "an IPv4 address string"))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(Default::default(), "an IPv4 CIDR string"))
    }
}

/// An address or a network: security rules and SNAT sources accept either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(pub Ipv4Net);

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains('/') {
            Cidr::from_str(s).map(|c| Prefix(c.0))
        } else {
            Ip::from_str(s).map(|ip| Prefix(Ipv4Net::from(ip.0)))
        }
    }
}

impl Prefix {
    pub fn contains(&self, ip: Ip) -> bool {
        self.0.contains(&ip.0)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == 32 {
            self.0.addr().fmt(f)
        } else {
            self.0.fmt(f)
        }
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(
            Default::default(),
            "an IPv4 address or CIDR string",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_refused_with_a_hint() {
        let e = "2001:db8::1".parse::<Ip>().unwrap_err();
        assert!(e.contains("IPv4 only"), "{e}");
    }

    #[test]
    fn host_bits_are_refused_with_the_network_to_write() {
        let e = "10.0.1.5/24".parse::<Cidr>().unwrap_err();
        assert!(e.contains("10.0.1.0/24"), "{e}");
    }

    #[test]
    fn gateway_is_the_third_from_the_top() {
        let c: Cidr = "10.0.1.0/24".parse().unwrap();
        assert_eq!(c.alicloud_gateway().to_string(), "10.0.1.253");
    }

    #[test]
    fn prefix_accepts_host_and_net() {
        assert_eq!(
            "10.0.0.1".parse::<Prefix>().unwrap().to_string(),
            "10.0.0.1"
        );
        assert_eq!(
            "10.0.0.0/8".parse::<Prefix>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }
}

/// An Ethernet (MAC) address written in the deployment file, as
/// `00:16:3e:aa:bb:cc` (either case; the ECS metadata service answers in
/// lower case, which is how it is shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a MAC address; write one like 00:16:3e:12:34:56");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if out[0] & 1 == 1 {
            return Err(format!(
                "`{s}` is a multicast MAC address; an ENI's MAC is unicast (the ECS console shows it on the ENI)"
            ));
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(Default::default(), "a MAC address string"))
    }
}

#[cfg(test)]
mod mac_tests {
    use super::Mac;

    #[test]
    fn parses_either_case_and_shows_lower_case() {
        let m: Mac = "00:16:3E:0a:BB:cc".parse().unwrap();
        assert_eq!(m.0, [0x00, 0x16, 0x3e, 0x0a, 0xbb, 0xcc]);
        assert_eq!(m.to_string(), "00:16:3e:0a:bb:cc");
    }

    #[test]
    fn refuses_what_is_not_a_unicast_mac() {
        for bad in [
            "",
            "00:16:3e:0a:bb",
            "00:16:3e:0a:bb:cc:dd",
            "00-16-3e-0a-bb-cc",
            "0:16:3e:0a:bb:cc",
            "00:16:3e:0a:bb:zz",
            "001:6:3e:0a:bb:cc",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
        ] {
            let e = bad.parse::<Mac>().unwrap_err();
            assert!(e.contains("MAC"), "{bad}: {e}");
        }
    }
}
