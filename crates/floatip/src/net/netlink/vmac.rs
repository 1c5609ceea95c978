//! The virtual-MAC interface over rtnetlink: reading an interface's kind, parent and macvlan mode
//! (so floatip only ever touches a macvlan it could have made), creating the macvlan (private mode,
//! as keepalived does, with the virtual MAC), bringing it up or down, and deleting it.

use anyhow::Context;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo as NlLinkInfo,
};

use super::{nl_err, nl_errno, LinkInfo, Netlink};

/// `MACVLAN_MODE_PRIVATE` (linux/if_link.h): no traffic between macvlans of one parent, and frames
/// whose source MAC is the macvlan's own are not filtered (VEPA mode would drop the peer's adverts).
pub const MACVLAN_MODE_PRIVATE: u32 = 1;

/// An interface with what decides whether it is a virtual-MAC interface of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacLink {
    pub link: LinkInfo,
    /// `IFLA_INFO_KIND` ("macvlan", "veth", ...); `None` for a plain device.
    pub kind: Option<String>,
    /// `IFLA_LINK`: the lower device's index.
    pub parent: Option<u32>,
    /// The macvlan mode, for a macvlan.
    pub mode: Option<u32>,
    /// Administratively up (`IFF_UP`), whatever the carrier.
    pub admin_up: bool,
}

impl Netlink {
    /// The interface `name` with its kind and parent, or `None` when there is none.
    pub async fn vmac_lookup(&self, name: &str) -> anyhow::Result<Option<VmacLink>> {
        let Some(msg) = self.link_message(name).await? else {
            return Ok(None);
        };
        let mut kind = None;
        let mut parent = None;
        let mut mode = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::Link(p) => parent = Some(*p),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            NlLinkInfo::Kind(k) => kind = Some(k.to_string()),
                            NlLinkInfo::Data(InfoData::MacVlan(data)) => {
                                for d in data {
                                    if let InfoMacVlan::Mode(m) = d {
                                        mode = Some(*m);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let admin_up = msg
            .header
            .flags
            .contains(&netlink_packet_route::link::LinkFlag::Up);
        Ok(Some(VmacLink {
            link: Self::link_info(&msg),
            kind,
            parent,
            mode,
            admin_up,
        }))
    }

    /// Creates the macvlan `name` on `parent` with the MAC `mac`, private mode, down.
    pub async fn create_macvlan(
        &self,
        parent: u32,
        name: &str,
        mac: [u8; 6],
    ) -> anyhow::Result<()> {
        let mut req =
            self.handle
                .link()
                .add()
                .macvlan(name.to_string(), parent, MACVLAN_MODE_PRIVATE);
        req.message_mut()
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        req.execute().await.map_err(nl_err).with_context(|| {
            format!("cannot create the macvlan {name} on interface index {parent} (is the macvlan module available?)")
        })
    }

    /// Sets the interface administratively up or down.
    pub async fn set_link_up(&self, index: u32, up: bool) -> anyhow::Result<()> {
        let req = self.handle.link().set(index);
        let req = if up { req.up() } else { req.down() };
        req.execute().await.map_err(nl_err).with_context(|| {
            format!(
                "cannot set interface index {index} {}",
                if up { "up" } else { "down" }
            )
        })
    }

    /// Deletes the interface. Ok if it is already gone.
    pub async fn delete_link(&self, index: u32) -> anyhow::Result<()> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if nl_errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => {
                Err(nl_err(e)).with_context(|| format!("cannot delete interface index {index}"))
            }
        }
    }
}

impl VmacLink {
    /// Whether this is a virtual-MAC interface floatip may take over: a macvlan on `parent` with
    /// `mac` (an interface of any other kind, parent or MAC is someone else's and is never touched).
    pub fn is_ours(&self, parent: u32, mac: [u8; 6]) -> bool {
        self.kind.as_deref() == Some(InfoKind::MacVlan.to_string().as_str())
            && self.parent == Some(parent)
            && self.link.mac == mac
    }
}
