//! ARP frames as bytes: the gratuitous announcement we send and the decoding
//! of what we receive. Pure; nothing here touches a socket.

use std::net::Ipv4Addr;

use etherparse::{
    ArpEthIpv4Packet, ArpOperation, ArpPacket as WireArp, EtherType, Ethernet2Header,
};

use crate::Mac;

/// Length of an Ethernet + IPv4 ARP frame without padding.
pub const FRAME_LEN: usize = Ethernet2Header::LEN + ArpEthIpv4Packet::LEN;

/// ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    /// who-has
    Request,
    /// is-at
    Reply,
}

/// The fields of an Ethernet/IPv4 ARP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpFields {
    /// Request or reply.
    pub op: ArpOp,
    /// Ethernet source address of the frame.
    pub eth_src: Mac,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in requests).
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpFields {
    /// A gratuitous ARP announces the sender's own address: sender IP equals
    /// target IP (RFC 5227 section 3).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// Why a received frame was not an Ethernet/IPv4 ARP request or reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// "who-has `ip` tell `ip`" from `mac`, to the broadcast address: the
/// announcement a new owner of `ip` sends (RFC 5227 section 3).
pub fn gratuitous(mac: Mac, ip: Ipv4Addr) -> [u8; FRAME_LEN] {
    let eth = Ethernet2Header {
        source: mac.0,
        destination: Mac::BROADCAST.0,
        ether_type: EtherType::ARP,
    };
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: mac.0,
        sender_ipv4: ip.octets(),
        target_mac: Mac::ZERO.0,
        target_ipv4: ip.octets(),
    };
    let mut frame = [0u8; FRAME_LEN];
    frame[..Ethernet2Header::LEN].copy_from_slice(&eth.to_bytes());
    frame[Ethernet2Header::LEN..].copy_from_slice(&arp.to_bytes());
    frame
}

/// Decodes an Ethernet frame carrying an IPv4-over-Ethernet ARP request or
/// reply. Trailing padding is ignored; anything else is `Malformed`.
pub fn decode(frame: &[u8]) -> Result<ArpFields, Malformed> {
    let (eth, rest) = Ethernet2Header::from_slice(frame)
        .map_err(|_| Malformed("shorter than an Ethernet header"))?;
    if eth.ether_type != EtherType::ARP {
        return Err(Malformed("not an ARP frame"));
    }
    let arp = WireArp::from_slice(rest).map_err(|_| Malformed("truncated ARP packet"))?;
    let arp = arp
        .try_eth_ipv4()
        .map_err(|_| Malformed("not Ethernet/IPv4 ARP"))?;
    let op = match arp.operation {
        ArpOperation::REQUEST => ArpOp::Request,
        ArpOperation::REPLY => ArpOp::Reply,
        _ => return Err(Malformed("neither request nor reply")),
    };
    Ok(ArpFields {
        op,
        eth_src: Mac(eth.source),
        sender_mac: Mac(arp.sender_mac),
        sender_ip: Ipv4Addr::from(arp.sender_ipv4),
        target_mac: Mac(arp.target_mac),
        target_ip: Ipv4Addr::from(arp.target_ipv4),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([2, 0, 0, 0, 0, 7]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);

    #[test]
    fn gratuitous_frame_round_trips() {
        let frame = gratuitous(MAC, IP);
        assert_eq!(frame.len(), 42);
        assert_eq!(&frame[..6], &[0xff; 6]);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        let fields = decode(&frame).unwrap();
        assert_eq!(fields.op, ArpOp::Request);
        assert_eq!(fields.sender_mac, MAC);
        assert_eq!(fields.eth_src, MAC);
        assert_eq!(fields.sender_ip, IP);
        assert_eq!(fields.target_ip, IP);
        assert!(fields.is_gratuitous());
    }

    #[test]
    fn padding_is_ignored() {
        let mut padded = gratuitous(MAC, IP).to_vec();
        padded.resize(60, 0);
        assert_eq!(decode(&padded).unwrap().sender_ip, IP);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let frame = gratuitous(MAC, IP);
        for len in 0..frame.len() {
            assert!(decode(&frame[..len]).is_err(), "length {len}");
        }
        for (offset, value) in [
            (12, 0x09u8),
            (13, 0x00),
            (15, 0x06),
            (17, 0x06),
            (18, 7),
            (19, 3),
            (21, 9),
        ] {
            let mut bad = frame;
            bad[offset] = value;
            assert!(decode(&bad).is_err(), "byte {offset} = {value}");
        }
        // Every single-byte value at every position: never a panic.
        for offset in 0..frame.len() {
            for value in 0..=255u8 {
                let mut f = frame;
                f[offset] = value;
                let _ = decode(&f);
            }
        }
    }
}
