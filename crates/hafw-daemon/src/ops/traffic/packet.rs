//! A logged packet's 5-tuple from its first bytes (the IPv4 header and the
//! ports after it). Pure; a packet that is too short, not IPv4, or has a
//! header length that does not fit is an error, counted by the caller.

use std::net::Ipv4Addr;

use super::record::Flow;

/// Why a logged packet's bytes gave no flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    Short,
    NotIpv4,
    HeaderLength,
}

pub fn flow(bytes: &[u8]) -> Result<Flow, Bad> {
    let b = bytes.get(..20).ok_or(Bad::Short)?;
    if b[0] >> 4 != 4 {
        return Err(Bad::NotIpv4);
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(Bad::HeaderLength);
    }
    let proto = b[9];
    let src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    // A fragment other than the first carries no ports.
    let first_fragment = u16::from_be_bytes([b[6], b[7]]) & 0x1fff == 0;
    let ports = match proto {
        6 | 17 if first_fragment => {
            let p = bytes.get(ihl..ihl + 4).ok_or(Bad::Short)?;
            Some((
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ))
        }
        _ => None,
    };
    Ok(Flow {
        proto,
        src,
        dst,
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> Vec<u8> {
        vec![
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 203, 0, 113, 7, 10, 0, 1, 10, 0x9c, 0x40,
            0, 22, 0, 0, 0, 0,
        ]
    }

    #[test]
    fn a_tcp_header_gives_its_five_tuple() {
        let f = flow(&tcp()).unwrap();
        assert_eq!(f.proto, 6);
        assert_eq!(f.src, Ipv4Addr::new(203, 0, 113, 7));
        assert_eq!(f.dst, Ipv4Addr::new(10, 0, 1, 10));
        assert_eq!(f.ports, Some((40000, 22)));
    }

    #[test]
    fn bad_headers_are_errors_never_a_panic() {
        assert_eq!(flow(&tcp()[..19]), Err(Bad::Short));
        assert_eq!(flow(&tcp()[..22]), Err(Bad::Short));
        let mut v6 = tcp();
        v6[0] = 0x60;
        assert_eq!(flow(&v6), Err(Bad::NotIpv4));
        let mut ihl = tcp();
        ihl[0] = 0x43;
        assert_eq!(flow(&ihl), Err(Bad::HeaderLength));
        let mut long = tcp();
        long[0] = 0x4f; // 60-byte header: the ports are past the copy
        assert_eq!(flow(&long), Err(Bad::Short));
        let mut rng = hafw_testkit::Rng::new(5);
        for _ in 0..20_000 {
            let m = hafw_testkit::mutate::mutate(&mut rng, &tcp(), 8);
            let _ = flow(&m);
        }
    }
}
