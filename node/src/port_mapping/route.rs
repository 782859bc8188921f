//! The default route's gateway, where PCP and NAT-PMP servers listen
//! (RFC 6886 §3: the client sends to its default gateway), from Linux's
//! `/proc/net/route`.

use std::net::Ipv4Addr;

/// The route flags: up, and through a gateway (`RTF_UP`, `RTF_GATEWAY`).
const RTF_UP: u16 = 0x1;
const RTF_GATEWAY: u16 = 0x2;

/// The IPv4 default route's gateway (the lowest metric's, if several).
pub(crate) fn default_gateway() -> Result<Ipv4Addr, String> {
    let table = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| format!("cannot read the routing table (/proc/net/route): {e}"))?;
    parse(&table).ok_or_else(|| "no IPv4 default route through a gateway".into())
}

/// The default gateway in a `/proc/net/route` table: the columns are
/// `Iface Destination Gateway Flags RefCnt Use Metric Mask …`, addresses
/// in hex of the kernel's in-memory (network order) bytes read as a
/// native-endian integer.
fn parse(table: &str) -> Option<Ipv4Addr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| fields.get(i).and_then(|f| u32::from_str_radix(f, 16).ok());
            let (destination, gateway, mask) = (hex(1)?, hex(2)?, hex(7)?);
            let flags = u16::from_str_radix(fields.get(3)?, 16).ok()?;
            let metric: u32 = fields.get(6)?.parse().ok()?;
            let default = destination == 0 && mask == 0;
            let through_gateway = flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
            (default && through_gateway && gateway != 0)
                .then(|| (metric, Ipv4Addr::from(gateway.to_ne_bytes())))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, gateway)| gateway)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ip` octets as `/proc/net/route` prints them on this machine.
    fn hex(ip: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip))
    }

    #[test]
    fn the_default_route_with_the_lowest_metric_names_the_gateway() {
        let table = format!(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t{}\t00000000\t0001\t0\t0\t0\t{}\t0\t0\t0\n\
             wlan0\t00000000\t{}\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             eth0\t00000000\t{}\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
            hex([10, 1, 0, 0]),
            hex([255, 255, 255, 0]),
            hex([192, 168, 1, 1]),
            hex([10, 1, 0, 1]),
        );
        assert_eq!(parse(&table), Some(Ipv4Addr::new(10, 1, 0, 1)));
    }

    #[test]
    fn no_default_route_or_a_garbled_table_gives_none() {
        let header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n";
        assert_eq!(parse(header), None);
        // A default route that is down.
        let down = format!(
            "{header}eth0\t00000000\t{}\t0002\t0\t0\t0\t00000000\n",
            hex([10, 0, 0, 1])
        );
        assert_eq!(parse(&down), None);
        assert_eq!(parse(&format!("{header}eth0\tzz\t\n\n")), None);
        assert_eq!(parse(""), None);
    }
}
