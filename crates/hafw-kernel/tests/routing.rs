//! Routes through a gateway namespace, `onlink` and `scope link` routes,
//! sysctl, and a policy rule `iif X lookup T`.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{wire, Lab};
use hafw_kernel::route::{self, Route};
use hafw_kernel::rule::{self, Rule};
use hafw_kernel::{in_netns, sysctl, Netns};

fn net(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}

/// A TCP listener in `ns` on `addr`.
fn listen(ns: &str, addr: &str) -> TcpListener {
    let addr: SocketAddr = addr.parse().unwrap();
    in_netns(Some(ns), || TcpListener::bind(addr))
        .unwrap()
        .unwrap()
}

/// Whether a TCP connect from namespace `from` to `to` succeeds within a second.
fn connects(from: &str, to: &TcpListener) -> bool {
    let dst = to.local_addr().unwrap();
    in_netns(Some(from), || {
        TcpStream::connect_timeout(&dst, Duration::from_secs(1)).is_ok()
    })
    .unwrap()
}

fn add(ns: &Netns, r: Route) {
    ns.run_blocking(move |nl| async move { route::add(&nl, &r).await })
        .unwrap();
}

#[test]
fn route_via_gateway_namespace_forwards_only_with_ip_forward() {
    let lab = Lab::new(&["ca", "gw", "cb"]);
    let (a, gw, b) = (lab.open(0), lab.open(1), lab.open(2));
    wire(&a, "a0", "10.2.1.2/24", &gw, "g1", "10.2.1.1/24");
    // b sits on a /32: its gateway is reached through an `onlink` route.
    wire(&gw, "g2", "10.2.2.1/24", &b, "b0", "10.2.2.2/32");
    add(
        &a,
        Route::new(net("0.0.0.0/0")).via("10.2.1.1".parse().unwrap()),
    );
    add(&b, Route::new(net("10.2.2.1/32")).dev("b0").scope_link());
    add(
        &b,
        Route::new(net("10.2.1.0/24"))
            .via("10.2.2.1".parse().unwrap())
            .dev("b0")
            .onlink(),
    );

    let main = b
        .run_blocking(|nl| async move { route::list(&nl, route::MAIN_TABLE).await })
        .unwrap();
    let onlink = main
        .iter()
        .find(|r| r.dst == net("10.2.1.0/24"))
        .expect("route listed");
    assert_eq!(onlink.gateway, Some("10.2.2.1".parse().unwrap()));
    assert!(onlink.onlink, "{onlink:?}");
    assert_eq!(onlink.dev.as_deref(), Some("b0"));
    let device = main
        .iter()
        .find(|r| r.dst == net("10.2.2.1/32"))
        .expect("device route listed");
    assert_eq!(device.scope, route::Scope::Link);

    let server = listen(lab.name(2), "10.2.2.2:0");
    sysctl::set(Some(lab.name(1)), "net.ipv4.ip_forward", "0").unwrap();
    assert!(
        !connects(lab.name(0), &server),
        "forwarded with ip_forward=0"
    );

    sysctl::set(Some(lab.name(1)), "net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(
        sysctl::get(Some(lab.name(1)), "net.ipv4.ip_forward").unwrap(),
        "1"
    );
    // The setting is per namespace: a's stays off.
    assert_eq!(
        sysctl::get(Some(lab.name(0)), "net/ipv4/ip_forward").unwrap(),
        "0"
    );
    assert!(
        connects(lab.name(0), &server),
        "not forwarded with ip_forward=1"
    );

    // Adding the same route again is EEXIST; replace is fine; delete is idempotent.
    let dup = Route::new(net("0.0.0.0/0")).via("10.2.1.1".parse().unwrap());
    let again = dup.clone();
    let err = a
        .run_blocking(move |nl| async move { route::add(&nl, &again).await })
        .unwrap_err();
    assert_eq!(err.errno(), Some(17), "{err}");
    let replaced = a
        .run_blocking(move |nl| async move {
            route::replace(&nl, &dup).await?;
            route::delete(&nl, &dup).await?;
            route::delete(&nl, &dup).await?;
            route::list(&nl, route::MAIN_TABLE).await
        })
        .unwrap();
    assert!(
        replaced.iter().all(|r| r.dst != net("0.0.0.0/0")),
        "{replaced:?}"
    );
    assert!(
        !connects(lab.name(0), &server),
        "default route still in use after delete"
    );
}

#[test]
fn policy_rule_selects_table_by_input_interface() {
    // client --(c0|r_in)-- router --(r_out|s0)-- server
    // The router knows 10.9.9.0/24 only in table 100, used for packets that
    // arrive on r_in.
    let lab = Lab::new(&["pc", "pr", "ps"]);
    let (c, r, s) = (lab.open(0), lab.open(1), lab.open(2));
    wire(&c, "c0", "10.3.1.2/24", &r, "r_in", "10.3.1.1/24");
    wire(&r, "r_out", "10.3.2.1/30", &s, "s0", "10.3.2.2/30");
    s.run_blocking(|nl| async move {
        hafw_kernel::addr::add(&nl, "s0", "10.9.9.2/24".parse().unwrap()).await
    })
    .unwrap();
    add(
        &c,
        Route::new(net("0.0.0.0/0")).via("10.3.1.1".parse().unwrap()),
    );
    add(
        &s,
        Route::new(net("0.0.0.0/0")).via("10.3.2.1".parse().unwrap()),
    );
    add(
        &r,
        Route::new(net("10.9.9.0/24"))
            .via("10.3.2.2".parse().unwrap())
            .table(100),
    );
    sysctl::set(Some(lab.name(1)), "net.ipv4.ip_forward", "1").unwrap();
    // Keep the test independent of the host's rp_filter default.
    sysctl::set(Some(lab.name(1)), "net.ipv4.conf.all.rp_filter", "0").unwrap();

    let server = listen(lab.name(2), "10.9.9.2:0");
    assert!(
        !connects(lab.name(0), &server),
        "reached 10.9.9.2 without the rule"
    );

    let the_rule = Rule::iif_lookup("r_in", 100, 100);
    let listed = {
        let add_rule = the_rule.clone();
        r.run_blocking(move |nl| async move {
            rule::add(&nl, &add_rule).await?;
            rule::add(&nl, &add_rule).await?;
            rule::list(&nl).await
        })
        .unwrap()
    };
    assert_eq!(
        listed.iter().filter(|x| **x == the_rule).count(),
        1,
        "{listed:?}"
    );
    assert!(
        connects(lab.name(0), &server),
        "rule iif r_in lookup 100 not applied"
    );

    // The router's own traffic does not arrive on r_in: the main table has no
    // route, so it is refused.
    assert!(
        !connects(lab.name(1), &server),
        "router reached 10.9.9.2 without the rule"
    );

    let table = r
        .run_blocking(|nl| async move { route::list(&nl, 100).await })
        .unwrap();
    assert_eq!(table.len(), 1, "{table:?}");
    assert_eq!(table[0].gateway, Some("10.3.2.2".parse().unwrap()));
    assert_eq!(table[0].table, 100);

    let del = the_rule.clone();
    let listed = r
        .run_blocking(move |nl| async move {
            rule::delete(&nl, &del).await?;
            rule::delete(&nl, &del).await?;
            rule::list(&nl).await
        })
        .unwrap();
    assert!(!listed.contains(&the_rule));
    assert!(
        !connects(lab.name(0), &server),
        "rule still applied after delete"
    );
}
