//! `hafw sessions`: this node's conntrack table as lines or JSON.

use hafw_kernel::conntrack::{self, Conntrack, Entry, Tuple};

use crate::error::{DaemonError, KernelError};

/// `hafw sessions`: the kernel's conntrack table of this node, filtered by
/// a substring of each line, at most `cap` lines. `cache`: the passive's
/// sync cache size, shown beside the kernel's count.
pub fn listing(
    filter: Option<&str>,
    json: bool,
    cache: Option<usize>,
    cap: usize,
) -> Result<String, DaemonError> {
    let driver = |step| move |source| KernelError::Driver { step, source };
    let mut ct = Conntrack::open(None).map_err(driver("open conntrack"))?;
    let entries = ct.dump().map_err(driver("dump conntrack"))?;
    let lines: Vec<(String, &Entry)> = entries
        .iter()
        .map(|e| (session_line(e), e))
        .filter(|(l, _)| filter.is_none_or(|f| l.contains(f)))
        .collect();
    let shown = lines.len().min(cap);
    if json {
        let v = serde_json::json!({
            "kernel_sessions": entries.len(),
            "sync_cache_sessions": cache,
            "matching": lines.len(),
            "sessions": lines[..shown].iter().map(|(l, e)| serde_json::json!({
                "line": l,
                "orig": e.orig.to_string(),
                "reply": e.reply.to_string(),
                "proto": e.orig.proto,
                "tcp_state": e.tcp.map(|t| tcp_state_name(t.state)),
                "nat": e.nat().map(|n| nat_text(&n)),
            })).collect::<Vec<_>>(),
        });
        return Ok(format!("{v}\n"));
    }
    let mut out = format!(
        "sessions  {} in the kernel{}{}\n",
        entries.len(),
        cache
            .map(|n| format!(", {n} in the sync cache"))
            .unwrap_or_default(),
        filter
            .map(|f| format!(", {} matching {f:?}", lines.len()))
            .unwrap_or_default()
    );
    for (l, _) in &lines[..shown] {
        out.push_str(l);
        out.push('\n');
    }
    if lines.len() > shown {
        out.push_str(&format!("... {} more\n", lines.len() - shown));
    }
    Ok(out)
}

fn session_line(e: &Entry) -> String {
    let proto = match e.orig.proto {
        conntrack::proto::TCP => "tcp".to_string(),
        conntrack::proto::UDP => "udp".to_string(),
        conntrack::proto::ICMP => "icmp".to_string(),
        p => format!("proto-{p}"),
    };
    let ends = |t: &Tuple| {
        if conntrack::proto::has_ports(t.proto) {
            format!("{}:{} -> {}:{}", t.src, t.src_port, t.dst, t.dst_port)
        } else {
            format!("{} -> {}", t.src, t.dst)
        }
    };
    format!(
        "{proto:<5} {}  reply {}{}{}",
        ends(&e.orig),
        ends(&e.reply),
        e.tcp
            .map(|t| format!("  {}", tcp_state_name(t.state)))
            .unwrap_or_default(),
        e.nat()
            .map(|n| format!("  {}", nat_text(&n)))
            .unwrap_or_default()
    )
}

fn nat_text(n: &conntrack::Nat) -> String {
    let mut parts = vec![];
    if let Some(b) = n.snat {
        parts.push(format!("snat {}:{}", b.addr, b.port));
    }
    if let Some(b) = n.dnat {
        parts.push(format!("dnat {}:{}", b.addr, b.port));
    }
    parts.join(" ")
}

fn tcp_state_name(s: u8) -> &'static str {
    use conntrack::tcp_state::*;
    match s {
        NONE => "NONE",
        SYN_SENT => "SYN_SENT",
        SYN_RECV => "SYN_RECV",
        ESTABLISHED => "ESTABLISHED",
        FIN_WAIT => "FIN_WAIT",
        CLOSE_WAIT => "CLOSE_WAIT",
        LAST_ACK => "LAST_ACK",
        TIME_WAIT => "TIME_WAIT",
        CLOSE => "CLOSE",
        SYN_SENT2 => "SYN_SENT2",
        _ => "?",
    }
}
