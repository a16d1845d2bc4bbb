//! IPv4 routes in any table (`ip route add/replace/del/show table T`).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::RouteMessageBuilder;

use crate::{link, Error, Result, Rtnl};

/// The main table (`ip route` without `table`).
pub const MAIN_TABLE: u32 = 254;

/// Route scope: `Universe` for routes through a gateway, `Link` for device
/// routes whose destination is directly reachable (`scope link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Reachable through a gateway (the default for `ip route add`).
    Universe,
    /// Directly attached (`scope link`).
    Link,
    /// This host only.
    Host,
}

/// One IPv4 unicast route. Build with [`Route::new`] and the chained setters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination network; host bits must be zero.
    pub dst: Ipv4Net,
    /// Next hop (`via`).
    pub gateway: Option<Ipv4Addr>,
    /// Output interface (`dev`).
    pub dev: Option<String>,
    /// Routing table id.
    pub table: u32,
    /// `onlink`: use the gateway even when no address of `dev` covers it
    /// (a gateway on a /32, or in another subnet). Needs `dev`.
    pub onlink: bool,
    /// Route scope.
    pub scope: Scope,
    /// `metric`, when set.
    pub metric: Option<u32>,
}

impl Route {
    /// A route to `dst` in the main table, scope universe, nothing else set.
    pub fn new(dst: Ipv4Net) -> Route {
        Route {
            dst,
            gateway: None,
            dev: None,
            table: MAIN_TABLE,
            onlink: false,
            scope: Scope::Universe,
            metric: None,
        }
    }

    /// Sets the next hop.
    pub fn via(mut self, gateway: Ipv4Addr) -> Route {
        self.gateway = Some(gateway);
        self
    }

    /// Sets the output interface.
    pub fn dev(mut self, dev: impl Into<String>) -> Route {
        self.dev = Some(dev.into());
        self
    }

    /// Sets the table.
    pub fn table(mut self, table: u32) -> Route {
        self.table = table;
        self
    }

    /// Sets the `onlink` flag.
    pub fn onlink(mut self) -> Route {
        self.onlink = true;
        self
    }

    /// Makes it a `scope link` device route.
    pub fn scope_link(mut self) -> Route {
        self.scope = Scope::Link;
        self
    }

    /// Sets the metric.
    pub fn metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }
}

/// Adds `route`; fails with EEXIST when the same destination is already in
/// the table with the same metric.
pub async fn add(rtnl: &Rtnl, route: &Route) -> Result<()> {
    let msg = build(rtnl, route).await?;
    rtnl.handle()
        .route()
        .add(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink("add route", object(rtnl, route), e))
}

/// Adds `route`, replacing a route to the same destination in the table.
pub async fn replace(rtnl: &Rtnl, route: &Route) -> Result<()> {
    let msg = build(rtnl, route).await?;
    rtnl.handle()
        .route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(|e| Error::netlink("replace route", object(rtnl, route), e))
}

/// Deletes `route`. A route that is not there is not an error.
pub async fn delete(rtnl: &Rtnl, route: &Route) -> Result<()> {
    let msg = build(rtnl, route).await?;
    match rtnl.handle().route().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) => match Error::netlink("delete route", object(rtnl, route), e) {
            err if err.errno() == Some(libc::ESRCH) => Ok(()),
            err => Err(err),
        },
    }
}

/// The unicast IPv4 routes of `table`.
pub async fn list(rtnl: &Rtnl, table: u32) -> Result<Vec<Route>> {
    let names: HashMap<u32, String> = link::list(rtnl)
        .await?
        .into_iter()
        .map(|l| (l.index, l.name))
        .collect();
    let msgs: Vec<RouteMessage> = rtnl
        .handle()
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("list routes", rtnl.object(format!("table {table}")), e))?;
    Ok(msgs
        .iter()
        .filter(|m| m.header.kind == RouteType::Unicast && table_of(m) == table)
        .filter_map(|m| parse(m, &names))
        .collect())
}

async fn build(rtnl: &Rtnl, route: &Route) -> Result<RouteMessage> {
    if route.dst.trunc() != route.dst {
        return Err(Error::invalid(
            "route destination",
            route.dst.to_string(),
            format!("host bits are set; did you mean {}?", route.dst.trunc()),
        ));
    }
    if route.onlink && route.dev.is_none() {
        return Err(Error::invalid(
            "route",
            route.dst.to_string(),
            "onlink needs an output interface (dev)",
        ));
    }
    let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.dst.addr(), route.dst.prefix_len())
        .table_id(route.table)
        .scope(match route.scope {
            Scope::Universe => RouteScope::Universe,
            Scope::Link => RouteScope::Link,
            Scope::Host => RouteScope::Host,
        });
    if let Some(gateway) = route.gateway {
        builder = builder.gateway(gateway);
    }
    if let Some(dev) = &route.dev {
        builder = builder.output_interface(link::index(rtnl, dev).await?);
    }
    if let Some(metric) = route.metric {
        builder = builder.priority(metric);
    }
    if route.onlink {
        builder = builder.onlink();
    }
    Ok(builder.build())
}

fn table_of(msg: &RouteMessage) -> u32 {
    // Tables above 255 are only in RTA_TABLE; the header then says RT_TABLE_UNSPEC.
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

fn parse(msg: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut route = Route::new(Ipv4Net::default());
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => route.gateway = Some(*ip),
            RouteAttribute::Oif(index) => route.dev = names.get(index).cloned(),
            RouteAttribute::Priority(metric) => route.metric = Some(*metric),
            _ => {}
        }
    }
    route.dst = Ipv4Net::new(dst, msg.header.destination_prefix_length).ok()?;
    route.table = table_of(msg);
    route.onlink = msg.header.flags.contains(RouteFlags::Onlink);
    route.scope = match msg.header.scope {
        RouteScope::Link => Scope::Link,
        RouteScope::Host => Scope::Host,
        _ => Scope::Universe,
    };
    Some(route)
}

fn object(rtnl: &Rtnl, route: &Route) -> String {
    let mut what = format!("{} table {}", route.dst, route.table);
    if let Some(gw) = route.gateway {
        what.push_str(&format!(" via {gw}"));
    }
    if let Some(dev) = &route.dev {
        what.push_str(&format!(" dev {dev}"));
    }
    rtnl.object(format!("route {what}"))
}
