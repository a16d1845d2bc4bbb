//! The human-readable plan `hafw plan node` prints: deterministic, columns
//! aligned, the ruleset verbatim at the end.

use std::fmt;

use super::{FloatingAddress, NodePlan};

impl fmt::Display for NodePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "node {} (deployment {})", self.node, self.deployment)?;
        writeln!(f, "  priority  {}", self.ha.priority)?;
        writeln!(f, "  key file  {}", self.key_file)?;
        writeln!(f, "  peer      {}", self.peer.as_deref().unwrap_or("none"))?;
        writeln!(f)?;

        let ha = &self.ha;
        let t = &ha.timers;
        let profile = t.profile;
        writeln!(f, "high availability")?;
        writeln!(
            f,
            "  port      {} (udp heartbeats, tcp session sync)",
            self.ha.port
        )?;
        writeln!(
            f,
            "  timers    heartbeat every {} ms, peer lost after {} missed ({} ms); profile {profile}",
            t.heartbeat_interval_ms,
            t.miss_count,
            t.detection_ms()
        )?;
        let preempt = if ha.preempt { "on" } else { "off" };
        writeln!(
            f,
            "  holds     preempt {preempt} (hold {} ms), promotion hold {} ms; flap limit {} promotions in {} s",
            ha.preempt_hold.as_millis(),
            ha.promotion_hold.as_millis(),
            ha.flap_limit.transitions,
            ha.flap_limit.window.as_secs()
        )?;
        writeln!(
            f,
            "  waits     takeover {} ms, initial listen {} ms, detection adapts up to {} ms",
            ha.takeover_wait.as_millis(),
            ha.initial_listen.as_millis(),
            ha.max_detection.as_millis()
        )?;
        writeln!(
            f,
            "  ids       this node {}, peer {}",
            ha.node_id,
            ha.peer_id.map_or_else(|| "none".into(), |i| i.to_string())
        )?;
        let rows: Vec<[String; 4]> = self
            .ha
            .paths
            .iter()
            .map(|p| {
                [
                    format!("path {}", p.role.as_str()),
                    p.ifname.clone(),
                    p.local.to_string(),
                    p.peer
                        .map_or_else(|| "(no peer)".into(), |a| format!("-> {a}")),
                ]
            })
            .collect();
        table(f, &rows)?;
        writeln!(f)?;

        writeln!(f, "interfaces")?;
        let rows: Vec<[String; 6]> = self
            .interfaces
            .iter()
            .map(|i| {
                [
                    i.ifname.clone(),
                    i.role.as_str().to_string(),
                    i.eni.clone(),
                    format!("{}/{}", i.address, i.prefix_len()),
                    format!("gateway {}", i.gateway),
                    format!(
                        "source/dest check {}",
                        if i.source_dest_check { "on" } else { "off" }
                    ),
                ]
            })
            .collect();
        table(f, &rows)?;
        writeln!(f)?;

        writeln!(f, "floating addresses (held while active)")?;
        let rows: Vec<[String; 2]> = self
            .floating
            .iter()
            .map(|a| {
                [
                    a.ifname.clone(),
                    format!("{}/{}", a.address, FloatingAddress::PREFIX_LEN),
                ]
            })
            .collect();
        none_or_table(f, &rows)?;
        writeln!(f)?;

        writeln!(f, "routes")?;
        let rows: Vec<[String; 3]> = self
            .routes
            .iter()
            .map(|r| {
                [
                    r.destination.to_string(),
                    format!("via {}", r.gateway),
                    format!("dev {}", r.ifname),
                ]
            })
            .collect();
        none_or_table(f, &rows)?;
        writeln!(f)?;

        writeln!(f, "sysctls")?;
        for s in &self.sysctls {
            writeln!(f, "  {} = {}", s.key, s.value)?;
        }
        writeln!(f)?;

        writeln!(f, "sessions")?;
        write!(f, "{}", self.sessions)?;
        writeln!(f)?;

        writeln!(
            f,
            "nftables ruleset (table {} {})",
            self.ruleset.family, self.ruleset.table
        )?;
        f.write_str(&self.ruleset.text)
    }
}

fn none_or_table<const N: usize>(f: &mut fmt::Formatter<'_>, rows: &[[String; N]]) -> fmt::Result {
    if rows.is_empty() {
        writeln!(f, "  none")
    } else {
        table(f, rows)
    }
}

/// Rows indented two spaces, columns two apart, each padded to its widest
/// cell.
fn table<const N: usize>(f: &mut fmt::Formatter<'_>, rows: &[[String; N]]) -> fmt::Result {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut text = String::new();
        for (k, (cell, w)) in row.iter().zip(widths).enumerate() {
            text.push_str("  ");
            text.push_str(cell);
            if k + 1 < N {
                text.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        writeln!(f, "{}", text.trim_end())?;
    }
    Ok(())
}
