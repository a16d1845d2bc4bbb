//! Look-ups over a parsed deployment shared by validation, rendering and the
//! lab. They return `None` for names that do not resolve; validation reports
//! those, so code after validation may rely on them.

use crate::addr::{Cidr, Ip};
use crate::spec::*;

impl Deployment {
    pub fn vswitch(&self, name: &str) -> Option<&VSwitch> {
        self.cloud.vswitches.iter().find(|v| v.name == name)
    }
    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.cloud.instances.iter().find(|i| i.name == name)
    }
    pub fn havip(&self, name: &str) -> Option<&Havip> {
        self.cloud.havips.iter().find(|h| h.name == name)
    }
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
    /// Every ENI with the instance it is attached to.
    pub fn enis(&self) -> impl Iterator<Item = (&Instance, &Eni)> {
        self.cloud
            .instances
            .iter()
            .flat_map(|i| i.enis.iter().map(move |e| (i, e)))
    }
    pub fn eni(&self, name: &str) -> Option<(&Instance, &Eni)> {
        self.enis().find(|(_, e)| e.name == name)
    }
    /// The EIP associated with a HAVIP, if any.
    pub fn eip_of(&self, havip: &str) -> Option<&Eip> {
        self.cloud
            .eips
            .iter()
            .find(|e| e.havip.as_deref() == Some(havip))
    }
    /// The floating address policy gives a role, if any.
    pub fn floating(&self, role: EniRole) -> Option<Ip> {
        let i = &self.policy.interface;
        match role {
            EniRole::Untrust => i.untrust.as_ref(),
            EniRole::Trust => i.trust.as_ref(),
            EniRole::Data => i.data.as_ref(),
            _ => None,
        }
        .map(|f| f.floating)
    }
    /// The HAVIP with an EIP: the address the internet reaches and the one
    /// outbound traffic must leave as.
    pub fn external_havip(&self) -> Option<&Havip> {
        self.cloud
            .havips
            .iter()
            .find(|h| self.eip_of(&h.name).is_some())
    }
}

impl Instance {
    pub fn eni_by_role(&self, role: EniRole) -> Option<&Eni> {
        self.enis.iter().find(|e| e.role == role)
    }
}

impl VSwitch {
    pub fn gateway(&self) -> Ip {
        self.cidr.alicloud_gateway()
    }
}

/// The vSwitch CIDR an ENI sits in, when it resolves.
pub fn eni_cidr(dep: &Deployment, eni: &Eni) -> Option<Cidr> {
    dep.vswitch(&eni.vswitch).map(|v| v.cidr)
}
